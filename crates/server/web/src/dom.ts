// A tiny element builder: text always goes in as text nodes (never innerHTML), so user data
// (titles, names, chat) cannot inject markup.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, ...c);
    else el.append(typeof c === 'number' ? String(c) : c);
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

export function plural(n: number, one: string, many: string): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** Two letters for an avatar. */
export function initials(name: string): string {
  // Words are runs of letters and digits: "cam_creator (test)" is CC, not "C(".
  const words = name.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const first = (w: string) => Array.from(w)[0] ?? '';
  const s = words.length > 1 ? first(words[0]) + first(words[1]) : Array.from(words[0] ?? '?').slice(0, 2).join('');
  return s.toUpperCase();
}

/** A stable hue for a name (chat names and avatars). */
export function hue(name: string): number {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)!) >>> 0;
  return x % 360;
}
