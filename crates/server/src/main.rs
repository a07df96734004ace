//! The StreamIt backend (placeholder until its issue lands).
fn main() {
    eprintln!("streamit-server: not built yet");
    std::process::exit(2);
}
