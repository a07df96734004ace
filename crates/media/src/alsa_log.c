/* ALSA's library prints its errors (a plugin that finds no card, no JACK or PulseAudio
 * server) straight to stderr while cpal probes devices. Its error handler is variadic,
 * which stable Rust cannot define, so this shim formats the message and hands it to
 * Rust's log (streamit_media::alsa_log) instead. */
#include <stdarg.h>
#include <stdio.h>
#include <alsa/asoundlib.h>

extern void streamit_media_alsa_message(const char *file, int line, const char *message);

static void to_rust(const char *file, int line, const char *function, int err,
                    const char *fmt, ...) {
    char message[512];
    va_list ap;
    (void)function;
    (void)err;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    streamit_media_alsa_message(file, line, message);
}

int streamit_media_route_alsa_errors(void) {
    return snd_lib_error_set_handler(to_rust);
}
