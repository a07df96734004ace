// The browser test driver: Debian's chromium, headless, through playwright-core (no browser
// download). crates/testkit's `Browser` spawns it and talks JSON lines over stdin/stdout:
// one command per line in, one answer per line out ({"ok":true,...} or {"ok":false,"error"}).
// It only drives and measures; the Rust tests decide. See tests/README.md.
//
// Env: STREAMIT_CHROMIUM (default /usr/bin/chromium), STREAMIT_BROWSER_NODE_MODULES (the
// node_modules holding playwright-core; default ./node_modules).
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.STREAMIT_BROWSER_NODE_MODULES || path.join(here, 'node_modules');
const require = createRequire(path.join(modules, 'noop.js'));
const { chromium } = require('playwright-core');

const executablePath = process.env.STREAMIT_CHROMIUM || '/usr/bin/chromium';
const log = (...a) => console.error('[driver]', ...a);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// Every RTCPeerConnection the page makes, so getStats can be read without the app's help.
const INIT_SCRIPT = `(() => {
  const Native = window.RTCPeerConnection;
  if (!Native || window.__streamitPcs) return;
  const pcs = [];
  Object.defineProperty(window, '__streamitPcs', { value: pcs });
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); pcs.push(this); }
  };
})();`;

/** In the page: media figures from getStats (inbound-rtp) and the video element. */
async function mediaInPage() {
  const video = { framesDecoded: 0, framesDropped: 0, width: 0, height: 0, fps: 0, packetsLost: 0, bytes: 0, codec: null };
  const audio = { samples: 0, packets: 0, bytes: 0, level: 0 };
  const codecs = new Map();
  for (const pc of window.__streamitPcs || []) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'codec') codecs.set(r.id, r.mimeType);
    });
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'video') {
        video.framesDecoded += r.framesDecoded || 0;
        video.framesDropped += r.framesDropped || 0;
        video.packetsLost += r.packetsLost || 0;
        video.bytes += r.bytesReceived || 0;
        if (r.frameWidth) {
          video.width = r.frameWidth;
          video.height = r.frameHeight;
        }
        if (r.framesPerSecond) video.fps = r.framesPerSecond;
        if (r.codecId && codecs.has(r.codecId)) video.codec = codecs.get(r.codecId);
      } else if (r.kind === 'audio') {
        audio.samples += r.totalSamplesReceived || 0;
        audio.packets += r.packetsReceived || 0;
        audio.bytes += r.bytesReceived || 0;
        if (r.audioLevel) audio.level = Math.max(audio.level, r.audioLevel);
      }
    });
  }
  const figures = (el) => ({
    width: el.videoWidth,
    height: el.videoHeight,
    frames: el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality().totalVideoFrames : 0,
    paused: el.paused,
    clientWidth: el.clientWidth,
    clientHeight: el.clientHeight,
    hidden: !!el.closest('[hidden]'),
  });
  const el = document.querySelector('video');
  const element = el ? figures(el) : null;
  // Every video element by its data-testid (the player, the camera's corner picture).
  const elements = {};
  for (const v of document.querySelectorAll('video[data-testid]')) elements[v.dataset.testid] = figures(v);
  return { video, audio, element, elements };
}

/** In the page: what a person sees (as rendered): state, counts, chat, rule, list. */
function domInPage() {
  const text = (sel) => document.querySelector(sel)?.textContent?.trim() ?? null;
  const watch = document.querySelector('.watch, [data-state]');
  const count = document.querySelector('[data-testid=viewer-count]');
  const input = document.querySelector('[data-testid=chat-input]');
  const visible = (el) => !!el && !el.closest('[hidden]') && el.getClientRects().length > 0;
  return {
    path: location.pathname,
    state: watch?.getAttribute('data-state') ?? null,
    title: text('[data-testid=title]'),
    description: text('[data-testid=description]'),
    viewerCount: count?.dataset.count ? Number(count.dataset.count) : null,
    viewerText: count?.textContent ?? null,
    chat: [...document.querySelectorAll('[data-chat-line]')].map((li) => ({
      id: li.getAttribute('data-message-id'),
      identity: li.getAttribute('data-identity'),
      role: li.getAttribute('data-role'),
      badge: li.querySelector('.chat-badge')?.textContent ?? null,
      name: li.querySelector('[data-testid=chat-name]')?.textContent ?? null,
      text: li.querySelector('[data-testid=chat-text]')?.textContent ?? null,
    })),
    chatOpen: visible(input) && !input.disabled,
    chatInputVisible: visible(input),
    chatRule: visible(document.querySelector('[data-testid=chat-rule]')) ? text('[data-testid=chat-rule]') : null,
    streams: [...document.querySelectorAll('[data-stream]')].map((a) => a.getAttribute('data-stream')),
    resolution: text('[data-testid=resolution]'),
  };
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    '--disable-dev-shm-usage',
    '--disable-gpu',
  ],
});
const pages = new Map();
let nextPage = 1;

function pageOf(cmd) {
  const p = pages.get(cmd.page);
  if (!p) throw new Error(`no page ${cmd.page}`);
  return p;
}

const commands = {
  async open(cmd) {
    const context = await browser.newContext({
      viewport: cmd.viewport ?? { width: 1280, height: 800 },
      deviceScaleFactor: 1,
    });
    await context.addInitScript(INIT_SCRIPT);
    const page = await context.newPage();
    const id = nextPage++;
    page.on('pageerror', (e) => log(`page ${id} error:`, e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') log(`page ${id} ${m.type()}:`, m.text());
    });
    const entry = { page, context, t0: Date.now() };
    pages.set(id, entry);
    if (cmd.url) {
      entry.t0 = Date.now();
      await page.goto(cmd.url, { waitUntil: 'domcontentloaded' });
    }
    return { page: id };
  },
  async goto(cmd) {
    const p = pageOf(cmd);
    p.t0 = Date.now();
    await p.page.goto(cmd.url, { waitUntil: 'domcontentloaded' });
    return {};
  },
  async click(cmd) {
    const p = pageOf(cmd);
    p.t0 = Date.now();
    await p.page.click(cmd.selector, { timeout: cmd.timeoutMs ?? 10000 });
    return {};
  },
  async fill(cmd) {
    await pageOf(cmd).page.fill(cmd.selector, cmd.text, { timeout: cmd.timeoutMs ?? 10000 });
    return {};
  },
  async select(cmd) {
    await pageOf(cmd).page.selectOption(cmd.selector, cmd.value, { timeout: cmd.timeoutMs ?? 10000 });
    return {};
  },
  async waitFor(cmd) {
    await pageOf(cmd).page.waitForSelector(cmd.selector, { state: cmd.state ?? 'visible', timeout: cmd.timeoutMs ?? 10000 });
    return {};
  },
  async sample(cmd) {
    const { page } = pageOf(cmd);
    const [media, dom] = await Promise.all([page.evaluate(mediaInPage), page.evaluate(domInPage)]);
    return { t: Date.now(), ...media, dom };
  },
  /** Samples every intervalMs for ms; the list comes back at the end. */
  async record(cmd) {
    const { page } = pageOf(cmd);
    const samples = [];
    const end = Date.now() + cmd.ms;
    while (Date.now() < end) {
      const started = Date.now();
      const media = await page.evaluate(mediaInPage);
      samples.push({ t: started, ...media });
      await new Promise((r) => setTimeout(r, Math.max(0, (cmd.intervalMs ?? 1000) - (Date.now() - started))));
    }
    return { samples };
  },
  /** Milliseconds from the page's last goto/click to its first decoded video frame. */
  async firstFrame(cmd) {
    const p = pageOf(cmd);
    const deadline = Date.now() + (cmd.timeoutMs ?? 20000);
    for (;;) {
      const m = await p.page.evaluate(mediaInPage);
      if (m.video.framesDecoded > 0) return { ms: Date.now() - p.t0, width: m.video.width, height: m.video.height };
      if (Date.now() > deadline) throw new Error(`no video frame within ${cmd.timeoutMs ?? 20000} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  },
  /** Types into the chat box and sends; returns once the page shows the line. */
  async chat(cmd) {
    const { page } = pageOf(cmd);
    await page.fill('[data-testid=chat-input]', cmd.text, { timeout: 10000 });
    await page.click('[data-testid=chat-send]', { timeout: 10000 });
    await page.waitForFunction(
      (t) => [...document.querySelectorAll('[data-chat-line].own [data-testid=chat-text]')].some((e) => e.textContent === t),
      cmd.text,
      { timeout: 10000 },
    );
    return {};
  },
  async quality(cmd) {
    await pageOf(cmd).page.selectOption('[data-testid=quality]', cmd.value, { timeout: 10000 });
    return {};
  },
  async screenshot(cmd) {
    await pageOf(cmd).page.screenshot({ path: cmd.path, fullPage: !!cmd.fullPage });
    return {};
  },
  /** Leaves like a person closing the tab (pagehide: livekit-client says goodbye). */
  async close(cmd) {
    const p = pageOf(cmd);
    pages.delete(cmd.page);
    await p.page.goto('about:blank').catch(() => {});
    await p.context.close();
    return {};
  },
  async quit() {
    await browser.close();
    out({ ok: true });
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
out({ ok: true, ready: true, version: browser.version() });
for await (const line of rl) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
    const fn = commands[cmd.cmd];
    if (!fn) throw new Error(`unknown command ${cmd.cmd}`);
    out({ ok: true, ...(await fn(cmd)) });
  } catch (e) {
    out({ ok: false, error: String(e?.message ?? e) });
  }
}
// stdin closed: the test is gone.
await browser.close().catch(() => {});
process.exit(0);
