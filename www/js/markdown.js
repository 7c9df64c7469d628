// A small, safe Markdown subset for message text: **bold**, *italic* or _italic_,
// `inline code`, ``` code blocks ```, "> " quotes, and http/https links. It builds
// DOM nodes; user text only ever becomes text nodes (textContent), never HTML, and a
// link's address is checked to be http or https before it becomes an href.

const INLINE = new RegExp(
  [
    '`([^`\\n]+)`', // 1: code
    '\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*', // 2: bold
    '\\*(?=[^\\s*])([^*\\n]*?[^\\s*])\\*', // 3: italic with *
    '(?<![\\p{L}\\p{N}_])_(?=[^\\s_])([^_\\n]*?[^\\s_])_(?![\\p{L}\\p{N}_])', // 4: italic with _
    '(https?://[^\\s<>"]+)', // 5: a link
  ].join('|'),
  'gu',
);

/** Trailing characters that end a sentence rather than a link: "see https://x.org)." */
const LINK_TAIL = /[.,;:!?'")\]]+$/u;

function link(raw) {
  let address = raw;
  let tail = '';
  const trailing = LINK_TAIL.exec(address);
  if (trailing) {
    // Keep a closing parenthesis that has its opening one inside the link (Wikipedia).
    let cut = trailing[0];
    if (cut.startsWith(')') && address.includes('(')) cut = cut.slice(1);
    if (cut) {
      tail = cut;
      address = address.slice(0, -cut.length);
    }
  }
  let url;
  try {
    url = new URL(address);
  } catch {
    return [document.createTextNode(raw)];
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return [document.createTextNode(raw)];
  const a = document.createElement('a');
  a.href = url.href;
  a.rel = 'noopener noreferrer nofollow';
  a.target = '_blank';
  a.textContent = address;
  return tail ? [a, document.createTextNode(tail)] : [a];
}

/** The nodes for one run of text without block structure. */
export function inline(text) {
  const nodes = [];
  let at = 0;
  INLINE.lastIndex = 0;
  for (let m = INLINE.exec(text); m; m = INLINE.exec(text)) {
    if (m.index > at) nodes.push(document.createTextNode(text.slice(at, m.index)));
    if (m[1] !== undefined) {
      const code = document.createElement('code');
      code.textContent = m[1];
      nodes.push(code);
    } else if (m[2] !== undefined) {
      const strong = document.createElement('strong');
      strong.append(...inline(m[2]));
      nodes.push(strong);
      INLINE.lastIndex = m.index + m[0].length; // the recursion moved it
    } else if (m[3] !== undefined || m[4] !== undefined) {
      const em = document.createElement('em');
      em.append(...inline(m[3] ?? m[4]));
      nodes.push(em);
      INLINE.lastIndex = m.index + m[0].length;
    } else {
      nodes.push(...link(m[5]));
    }
    at = m.index + m[0].length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

const FENCE = /^\s*```/u;
const QUOTE = /^>\s?/u;

/** The nodes for a whole message: paragraphs of inline text, code blocks, quotes. */
export function render(text) {
  const lines = String(text).split('\n');
  const nodes = [];
  let para = [];
  const flushPara = () => {
    if (!para.length) return;
    const span = document.createElement('span');
    span.className = 'md-p';
    span.append(...inline(para.join('\n')));
    nodes.push(span);
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (FENCE.test(line)) {
      // A fence: everything up to the closing one (or the end) is code, verbatim.
      const code = [];
      let j = i + 1;
      while (j < lines.length && !FENCE.test(lines[j])) code.push(lines[j++]);
      if (j >= lines.length && !code.length) {
        para.push(line); // a lone ``` is just text
        continue;
      }
      flushPara();
      const pre = document.createElement('pre');
      const codeNode = document.createElement('code');
      codeNode.textContent = code.join('\n');
      pre.append(codeNode);
      nodes.push(pre);
      i = j;
    } else if (QUOTE.test(line)) {
      flushPara();
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].replace(QUOTE, ''));
      i--;
      const quote = document.createElement('blockquote');
      quote.append(...inline(quoted.join('\n')));
      nodes.push(quote);
    } else {
      para.push(line);
    }
  }
  flushPara();
  return nodes;
}
