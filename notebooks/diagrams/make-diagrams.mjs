// Draws the course's diagrams as self-contained SVG files, one style for all of them.
// Run: node notebooks/diagrams/make-diagrams.mjs   (plain Node, no packages; writes the .svg files next to it)
//
// Style: Helvetica/Arial for text, a monospace stack for code names, tokens and shapes; white background;
// one colour per kind of thing (tokens/embeddings blue, attention orange, MLP green, LayerNorm purple,
// training/graded targets gold, tensors and other data grey); rounded corners of 6 (boxes) and 3 (cells);
// lines 1.5 wide; one arrow head. The viewBox is about 800 units wide, shown at 800 px: 1 unit = 1 px, and
// no text is smaller than 12 px.

import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- style

const SANS = "Helvetica, Arial, sans-serif";
const MONO = "Menlo, Consolas, 'DejaVu Sans Mono', monospace";
const INK = "#1f2933"; // text
const MUTED = "#52606d"; // secondary text
const LINE = "#3e4c59"; // arrows and connectors
const BG = "#ffffff";

/** Fill and stroke of each kind of element. */
const KIND = {
  token: { fill: "#dbe9f9", stroke: "#2f6db5" }, // tokens, ids, embeddings
  attn: { fill: "#fde4c8", stroke: "#c4661f" }, // attention
  mlp: { fill: "#d9f0dd", stroke: "#2f8a4c" }, // MLP
  norm: { fill: "#ebe2f7", stroke: "#7650ad" }, // LayerNorm
  train: { fill: "#fff1c2", stroke: "#a67c00" }, // training, graded targets
  data: { fill: "#f3f4f6", stroke: "#7b8794" }, // tensors, artefacts
  plain: { fill: "#ffffff", stroke: LINE },
  masked: { fill: "#c9d0d9", stroke: "#7b8794" },
};
const RX = 6; // corner radius of boxes
const RX_CELL = 3; // corner radius of small cells and chips
const SW = 1.5; // line width

// ---------------------------------------------------------------- text helpers

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Approximate advance width of one character, in em (generous: sized for DejaVu Sans, wider than Helvetica). */
function charWidth(ch) {
  if ("il.,:;|!'j".includes(ch)) return 0.3;
  if ("I".includes(ch)) return 0.32;
  if (" ".includes(ch)) return 0.32;
  if ("ftr()[]{}·".includes(ch)) return 0.4;
  if ("mw".includes(ch)) return 0.92;
  if ("MW".includes(ch)) return 0.95;
  if ("−+=×<>⊕→←↓↑".includes(ch)) return 0.84;
  if (/[0-9]/.test(ch)) return 0.64;
  if (/[A-Z]/.test(ch)) return 0.72;
  return 0.62;
}

/** Width of a plain string (markup removed) at `size`. */
function textWidth(str, size, { mono = false, bold = false } = {}) {
  const plain = stripMarkup(str);
  if (mono) return plain.length * 0.602 * size;
  let w = 0;
  for (const ch of plain) w += charWidth(ch);
  return w * size * (bold ? 1.07 : 1);
}

function stripMarkup(str) {
  return String(str).replace(/[_^]\{([^}]*)\}/g, "$1");
}

/**
 * Text with a small markup: `_{k}` writes k as a subscript (12 px, lowered). Returns the inner tspans.
 */
function richText(str, size) {
  const parts = [];
  const re = /_\{([^}]*)\}/g;
  let last = 0;
  let m;
  let shifted = false;
  const sub = Math.max(12, Math.round(size * 0.8));
  while ((m = re.exec(str))) {
    if (m.index > last) parts.push(`<tspan${shifted ? ' dy="-4"' : ""}>${esc(str.slice(last, m.index))}</tspan>`), (shifted = false);
    parts.push(`<tspan dy="${shifted ? 0 : 4}" font-size="${sub}">${esc(m[1])}</tspan>`);
    shifted = true;
    last = re.lastIndex;
  }
  if (last < str.length) parts.push(`<tspan${shifted ? ' dy="-4"' : ""}>${esc(str.slice(last))}</tspan>`);
  else if (shifted) parts.push(`<tspan dy="-4"></tspan>`);
  return parts.join("");
}

/**
 * A line of text. opts: size (px), anchor (start|middle|end), weight, fill, mono, italic.
 */
function text(x, y, str, opts = {}) {
  const { size = 14, anchor = "start", weight, fill = INK, mono = false, italic = false } = opts;
  if (str === "") return "";
  const attrs = [
    `x="${r(x)}"`,
    `y="${r(y)}"`,
    `font-size="${size}"`,
    anchor !== "start" ? `text-anchor="${anchor}"` : "",
    weight ? `font-weight="${weight}"` : "",
    fill !== INK ? `fill="${fill}"` : "",
    mono ? `font-family="${MONO}"` : "",
    italic ? `font-style="italic"` : "",
  ].filter(Boolean);
  const inner = str.includes("_{") ? richText(str, size) : esc(str);
  return `<text ${attrs.join(" ")}>${inner}</text>`;
}

/** Several lines, `lineHeight` apart, first baseline at y. */
function lines(x, y, strs, opts = {}) {
  const lh = opts.lineHeight ?? Math.round((opts.size ?? 14) * 1.3);
  return strs.map((s, i) => (s === null ? "" : text(x, y + i * lh, s, opts))).join("\n");
}

const r = (v) => Math.round(v * 10) / 10;

// ---------------------------------------------------------------- shapes

function rect(x, y, w, h, { kind = "plain", rx = RX, dashed = false, fill, stroke, sw = SW } = {}) {
  const k = KIND[kind];
  return `<rect x="${r(x)}" y="${r(y)}" width="${r(w)}" height="${r(h)}" rx="${rx}" fill="${fill ?? k.fill}" stroke="${stroke ?? k.stroke}" stroke-width="${sw}"${dashed ? ' stroke-dasharray="5 4"' : ""}/>`;
}

/** A box with a bold title and optional sub-lines, centred. */
function box(x, y, w, h, title, { kind = "plain", sub = [], titleSize = 15, subSize = 12.5, monoTitle = false, monoSub = false, dashed = false } = {}) {
  const n = sub.length;
  const lhSub = Math.round(subSize * 1.3);
  const block = titleSize + n * lhSub;
  const top = y + (h - block) / 2 + titleSize * 0.8;
  const parts = [rect(x, y, w, h, { kind, dashed })];
  parts.push(text(x + w / 2, top, title, { size: titleSize, anchor: "middle", weight: "bold", mono: monoTitle }));
  sub.forEach((s, i) => {
    const item = typeof s === "string" ? { t: s, mono: monoSub } : s;
    parts.push(text(x + w / 2, top + (i + 1) * lhSub + 1, item.t, { size: subSize, anchor: "middle", fill: MUTED, mono: item.mono }));
  });
  return parts.join("\n");
}

/** A chapter badge ("ch 05") sitting on the top edge of a box, at its left. */
function badge(x, y, label, kind) {
  const w = textWidth(label, 12, { bold: true }) + 14;
  return `${rect(x, y - 10, w, 20, { fill: KIND[kind].stroke, stroke: KIND[kind].stroke, rx: 10 })}\n${text(x + w / 2, y + 4.5, label, { size: 12, anchor: "middle", weight: "bold", fill: "#ffffff" })}`;
}

/** A polyline with an arrow head at its end. points: [[x, y], ...]. */
function arrow(points, { dashed = false, color = LINE, head = true, sw = SW, id } = {}) {
  const d = points.map(([x, y], i) => `${i ? "L" : "M"}${r(x)},${r(y)}`).join(" ");
  return `<path d="${d}" fill="none" stroke="${color}" stroke-width="${sw}" stroke-linejoin="round"${dashed ? ' stroke-dasharray="5 4"' : ""}${head ? ` marker-end="url(#${id ?? CURRENT.id}-arrow)"` : ""}/>`;
}

/** A line without a head. */
const line = (points, opts = {}) => arrow(points, { ...opts, head: false });

/** A circle with a symbol in it (⊕ for residual additions, · for products). */
function opCircle(cx, cy, symbol = "+", { r: radius = 10, kind = "plain" } = {}) {
  return `<circle cx="${r(cx)}" cy="${r(cy)}" r="${radius}" fill="${KIND[kind].fill}" stroke="${KIND[kind].stroke}" stroke-width="${SW}"/>\n${text(cx, cy + 5.5, symbol, { size: 17, anchor: "middle", weight: "bold" })}`;
}

/** A dot where a line forks. */
const dot = (cx, cy) => `<circle cx="${r(cx)}" cy="${r(cy)}" r="3.5" fill="${LINE}"/>`;

/**
 * A grid of cells: rows × cols, each `cell` px. fill(i, j) and label(i, j) decide each cell.
 */
function grid(x, y, rows, cols, cell, { fill = () => KIND.data.fill, stroke = KIND.data.stroke, label, labelSize = 12 } = {}) {
  const ch = cell;
  const out = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      out.push(`<rect x="${r(x + j * cell)}" y="${r(y + i * ch)}" width="${cell}" height="${ch}" fill="${fill(i, j)}" stroke="${stroke}" stroke-width="1"/>`);
      const t = label?.(i, j);
      if (t !== undefined && t !== null && t !== "") out.push(text(x + j * cell + cell / 2, y + i * ch + ch / 2 + labelSize * 0.36, t, { size: labelSize, anchor: "middle" }));
    }
  }
  out.push(`<rect x="${r(x)}" y="${r(y)}" width="${cols * cell}" height="${rows * ch}" fill="none" stroke="${stroke}" stroke-width="${SW}"/>`);
  return out.join("\n");
}

/** Deterministic pseudo-random numbers in [0, 1), for cell shading. */
function shades(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Mix two hex colours: t = 0 gives a, 1 gives b. */
function mix(a, b, t) {
  const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16));
  const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16));
  return "#" + pa.map((v, i) => Math.round(v + (pb[i] - v) * t).toString(16).padStart(2, "0")).join("");
}

/** A curly brace along x from x0 to x1 at y, opening downwards (dir 1) or upwards (−1). */
function hbrace(x0, x1, y, dir = 1, color = MUTED) {
  const m = (x0 + x1) / 2;
  const h = 7 * dir;
  const d = `M${r(x0)},${r(y)} Q${r(x0)},${r(y - h)} ${r(x0 + 8)},${r(y - h)} L${r(m - 8)},${r(y - h)} Q${r(m)},${r(y - h)} ${r(m)},${r(y - 2 * h)} Q${r(m)},${r(y - h)} ${r(m + 8)},${r(y - h)} L${r(x1 - 8)},${r(y - h)} Q${r(x1)},${r(y - h)} ${r(x1)},${r(y)}`;
  return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.3"/>`;
}

/** A vertical curly brace along y from y0 to y1 at x, pointing left (dir 1) or right (−1). */
function vbrace(x, y0, y1, dir = 1, color = MUTED) {
  const m = (y0 + y1) / 2;
  const w = 7 * dir;
  const d = `M${r(x)},${r(y0)} Q${r(x - w)},${r(y0)} ${r(x - w)},${r(y0 + 8)} L${r(x - w)},${r(m - 8)} Q${r(x - w)},${r(m)} ${r(x - 2 * w)},${r(m)} Q${r(x - w)},${r(m)} ${r(x - w)},${r(m + 8)} L${r(x - w)},${r(y1 - 8)} Q${r(x - w)},${r(y1)} ${r(x)},${r(y1)}`;
  return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.3"/>`;
}

// ---------------------------------------------------------------- document

const CURRENT = { id: "" };

function svgDocument({ id, width, height, title, desc, body }) {
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="${id}-title ${id}-desc" font-family="${SANS}" fill="${INK}">
<title id="${id}-title">${esc(title)}</title>
<desc id="${id}-desc">${esc(desc)}</desc>
<defs>
<marker id="${id}-arrow" viewBox="0 0 10 10" refX="9.5" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">
<path d="M0,0.8 L10,5 L0,9.2 z" fill="${LINE}"/>
</marker>
</defs>
<rect x="0" y="0" width="${width}" height="${height}" fill="${BG}"/>
${body}
</svg>
`;
}

const diagrams = [];
function diagram(name, fn) {
  diagrams.push({ name, fn });
}

/** The heading of a figure, top left. */
const heading = (str, y = 30) => text(24, y, str, { size: 17, weight: "bold" });

// ================================================================ 1. route.svg

diagram("route", () => {
  const W = 800;
  const H = 530;
  const b = [];
  b.push(heading("The route of the course"));
  const h = 74;
  const y1 = 62;
  const y2 = 198;
  const y3 = 322;
  // Row 1: text → tokenizer → token ids → GPT
  const row1 = [
    { x: 24, w: 150, title: "text", sub: ["State of the Union", "speeches, 1790–2021"], kind: "data" },
    { x: 214, w: 160, title: "Tokenizer", sub: ["characters, bytes,", "byte-pair encoding"], kind: "token", ch: "ch 01" },
    { x: 414, w: 130, title: "token ids", sub: ["integers, (B, T)"], kind: "data" },
    { x: 584, w: 192, title: "GPT", sub: ["attention (02), blocks (03),", "the whole model (04)"], kind: "attn", ch: "ch 02–04" },
  ];
  const row2 = [
    { x: 24, w: 180, title: "Pretraining", sub: ["predict the next token", "of the speeches"], kind: "train", ch: "ch 05" },
    { x: 244, w: 140, title: "base model", sub: ["continues text"], kind: "data" },
    { x: 424, w: 190, title: "Fine-tuning", sub: ["on conversations: chat", "template, loss masking"], kind: "train", ch: "ch 07" },
    { x: 654, w: 122, title: "chat model", sub: ["answers"], kind: "data" },
  ];
  const drawRow = (row, y) => {
    row.forEach((n) => {
      b.push(box(n.x, y, n.w, h, n.title, { kind: n.kind, sub: n.sub }));
      if (n.ch) b.push(badge(n.x + 10, y, n.ch, n.kind));
    });
    for (let i = 0; i + 1 < row.length; i++) b.push(arrow([[row[i].x + row[i].w, y + h / 2], [row[i + 1].x - 1, y + h / 2]]));
  };
  drawRow(row1, y1);
  drawRow(row2, y2);
  // GPT (untrained) → pretraining: wraps round like a line of text
  const gpt = row1[3];
  const pre = row2[0];
  const wrapY = (y1 + h + y2) / 2;
  b.push(arrow([[gpt.x + gpt.w / 2, y1 + h], [gpt.x + gpt.w / 2, wrapY], [pre.x + pre.w / 2, wrapY], [pre.x + pre.w / 2, y2 - 11]]));
  b.push(text(gpt.x + gpt.w / 2 - 10, wrapY - 7, "random weights", { size: 12, anchor: "end", fill: MUTED }));
  // Row 3: generation (from the base model and from the chat model), GPT-2 weights as a side entry
  const gen = { x: 424, w: 190 };
  b.push(box(gen.x, y3, gen.w, h, "Generation", { kind: "token", sub: ["greedy, temperature, top-k,", "top-p; the KV cache"] }));
  b.push(badge(gen.x + 10, y3, "ch 06", "token"));
  const base = row2[1];
  const chat = row2[3];
  b.push(arrow([[base.x + base.w - 30, y2 + h], [base.x + base.w - 30, y3 + h / 2], [gen.x - 1, y3 + h / 2]]));
  b.push(arrow([[chat.x + chat.w / 2, y2 + h], [chat.x + chat.w / 2, y3 + h / 2], [gen.x + gen.w + 1, y3 + h / 2]]));
  b.push(lines(gen.x + gen.w + 14, y3 + h / 2 + 22, ["chatting is generation", "with the chat template"], { size: 12, fill: MUTED, lineHeight: 15 }));
  // Row 4: preference tuning, the step after fine-tuning, under the chat model
  const pref = { x: 586, w: 190, y: 450 };
  b.push(box(pref.x, pref.y, pref.w, h, "Preference tuning", { kind: "train", sub: ["DPO; RL from a reward", "a program computes"] }));
  b.push(badge(pref.x + 10, pref.y, "ch 10", "train"));
  const down = chat.x + chat.w + 12;
  b.push(arrow([[chat.x + chat.w, y2 + h / 2 + 18], [down, y2 + h / 2 + 18], [down, pref.y + h / 2], [pref.x + pref.w + 1, pref.y + h / 2]]));
  b.push(lines(pref.x - 12, pref.y + h / 2 - 2, ["a chat model tuned", "on its own answers"], { size: 12, fill: MUTED, lineHeight: 15, anchor: "end" }));
  const g2 = { x: 24, w: 180 };
  b.push(box(g2.x, y3, g2.w, h, "GPT-2 weights", { kind: "data", sub: ["OpenAI's, pretrained", "on 40 GB of web text"] }));
  b.push(badge(g2.x + 10, y3, "ch 08", "data"));
  b.push(arrow([[g2.x + g2.w, y3 + h / 2], [base.x + 30, y3 + h / 2], [base.x + 30, y2 + h + 1]], { dashed: true }));
  b.push(lines(g2.x + g2.w + 10, y3 + h / 2 + 22, ["loaded by name into", "the same GPT class"], { size: 12, fill: MUTED, lineHeight: 15 }));
  return {
    width: W,
    height: H,
    title: "The route of the course",
    desc:
      "Text is cut into token ids by a tokenizer (chapter 01). The ids go into a GPT (attention in chapter 02, blocks in 03, the whole model in 04). " +
      "Pretraining on the State of the Union speeches (chapter 05) turns the randomly initialised GPT into a base model that continues text; " +
      "fine-tuning on conversations (chapter 07) turns a base model into a chat model, and preference tuning (chapter 10: DPO, or reinforcement learning from a reward a program computes) tunes the chat model on its own answers. Generation (chapter 06) writes text with either model. " +
      "As a side entry, OpenAI's GPT-2 weights (chapter 08) are loaded by name into the same GPT class and give a base model without pretraining.",
    body: b.join("\n"),
  };
});

// ================================================================ 2. gpt-stack.svg

/** A shape annotation such as (B, T, C), in monospace, muted. */
const shape = (x, y, str, anchor = "start") => text(x, y, str, { size: 13, mono: true, fill: MUTED, anchor });

diagram("gpt-stack", () => {
  const W = 800;
  const H = 690;
  const b = [];
  b.push(heading("GPT: the forward pass, shape by shape"));
  const cx = 230;
  // inputs
  const L = 66; // left column of the inputs
  const R = 246; // right column
  const cw = 160;
  b.push(box(L, 58, cw, 44, "token ids", { kind: "data", titleSize: 14, sub: ["from the tokenizer"], subSize: 12 }));
  b.push(box(R, 58, cw, 44, "positions", { kind: "data", titleSize: 14, sub: ["0, 1, …, T−1"], subSize: 12 }));
  b.push(arrow([[L + cw / 2, 102], [L + cw / 2, 133]]));
  b.push(arrow([[R + cw / 2, 102], [R + cw / 2, 133]]));
  b.push(shape(L + cw / 2 + 8, 122, "(B, T)"));
  b.push(shape(R + cw / 2 + 8, 122, "(T)"));
  // embeddings
  b.push(box(L, 134, cw, 56, "wte", { kind: "token", monoTitle: true, sub: ["token embedding", { t: "(V, C)", mono: true }], subSize: 12 }));
  b.push(box(R, 134, cw, 56, "wpe", { kind: "token", monoTitle: true, sub: ["position embedding", { t: "(T_{max}, C)", mono: true }], subSize: 12 }));
  const addY = 226;
  b.push(arrow([[L + cw / 2, 190], [L + cw / 2, addY], [cx - 11, addY]]));
  b.push(arrow([[R + cw / 2, 190], [R + cw / 2, addY], [cx + 11, addY]]));
  b.push(shape(L + cw / 2 + 8, 210, "(B, T, C)"));
  b.push(shape(R + cw / 2 + 8, 210, "(T, C)"));
  b.push(opCircle(cx, addY, "+"));
  // blocks
  const bx = 110;
  const bw = 240;
  const bh = 34;
  const gap = 14;
  const top = 272;
  b.push(arrow([[cx, addY + 10], [cx, top - 1]]));
  b.push(shape(cx + 8, addY + 31, "(B, T, C)"));
  for (let i = 0; i < 4; i++) {
    const y = top + i * (bh + gap);
    b.push(rect(bx, y, bw, bh, { kind: "plain" }));
    b.push(text(bx + 14, y + 22, `h.${i}`, { size: 14, weight: "bold", mono: true }));
    b.push(rect(bx + 70, y + 7, 70, 20, { kind: "attn", rx: RX_CELL }));
    b.push(text(bx + 105, y + 21.5, "attn", { size: 12.5, anchor: "middle", mono: true }));
    b.push(rect(bx + 152, y + 7, 70, 20, { kind: "mlp", rx: RX_CELL }));
    b.push(text(bx + 187, y + 21.5, "mlp", { size: 12.5, anchor: "middle", mono: true }));
    if (i < 3) b.push(arrow([[cx, y + bh], [cx, y + bh + gap - 1]]));
  }
  const bottom = top + 4 * bh + 3 * gap;
  b.push(vbrace(bx + bw + 10, top, bottom, -1));
  b.push(lines(bx + bw + 28, (top + bottom) / 2 - 4, ["L = 4", "blocks"], { size: 13, fill: MUTED, lineHeight: 16 }));
  // ln_f, head, logits
  const lnY = bottom + 34;
  b.push(arrow([[cx, bottom], [cx, lnY - 1]]));
  b.push(shape(cx + 8, bottom + 22, "(B, T, C)"));
  b.push(box(cx - 80, lnY, 160, 44, "ln_f", { kind: "norm", monoTitle: true, sub: ["final LayerNorm"], titleSize: 14 }));
  const headY = lnY + 44 + 34;
  b.push(arrow([[cx, lnY + 44], [cx, headY - 1]]));
  b.push(shape(cx + 8, lnY + 44 + 22, "(B, T, C)"));
  b.push(box(cx - 80, headY, 160, 44, "· wteᵀ", { kind: "token", monoTitle: true, sub: ["output head, tied"], titleSize: 14 }));
  const logY = headY + 44 + 34;
  b.push(arrow([[cx, headY + 44], [cx, logY - 1]]));
  b.push(box(cx - 80, logY, 160, 40, "logits", { kind: "data", titleSize: 14 }));
  b.push(shape(cx + 88, logY + 25, "(B, T, V)"));
  // tying: the head reuses wte
  b.push(line([[cx - 80, headY + 22], [40, headY + 22], [40, 162], [L, 162]], { dashed: true, color: KIND.token.stroke }));
  b.push(lines(48, headY - 24, ["same", "matrix"], { size: 12, fill: KIND.token.stroke, lineHeight: 14 }));

  // inset: inside one block
  const ix = 440;
  const iw = 336;
  const iy = 58;
  const ih = 414;
  b.push(rect(ix, iy, iw, ih, { kind: "plain", dashed: true, stroke: KIND.data.stroke }));
  b.push(text(ix + 16, iy + 26, "inside each block h.N (pre-LN)", { size: 14, weight: "bold" }));
  const mx = ix + 184; // main path
  const px = ix + 30; // bypass
  const bwid = 200;
  b.push(shape(mx, iy + 52, "x (B, T, C)", "middle"));
  const f1 = iy + 70;
  b.push(line([[mx, iy + 58], [mx, f1]]));
  b.push(dot(mx, f1));
  const ln1 = f1 + 14;
  b.push(arrow([[mx, f1], [mx, ln1 - 1]]));
  b.push(box(mx - 60, ln1, 120, 28, "ln_1", { kind: "norm", monoTitle: true, titleSize: 14 }));
  const at = ln1 + 28 + 16;
  b.push(arrow([[mx, ln1 + 28], [mx, at - 1]]));
  b.push(box(mx - bwid / 2, at, bwid, 58, "attn", { kind: "attn", monoTitle: true, titleSize: 14, sub: ["c_attn: C → 3C (q, k, v)", "c_proj: C → C"], monoSub: true, subSize: 12 }));
  const a1 = at + 58 + 22;
  b.push(arrow([[mx, at + 58], [mx, a1 - 11]]));
  b.push(opCircle(mx, a1, "+"));
  b.push(arrow([[mx, f1], [px, f1], [px, a1], [mx - 11, a1]]));
  const f2 = a1 + 24;
  b.push(line([[mx, a1 + 10], [mx, f2]]));
  b.push(dot(mx, f2));
  const ln2 = f2 + 14;
  b.push(arrow([[mx, f2], [mx, ln2 - 1]]));
  b.push(box(mx - 60, ln2, 120, 28, "ln_2", { kind: "norm", monoTitle: true, titleSize: 14 }));
  const ml = ln2 + 28 + 16;
  b.push(arrow([[mx, ln2 + 28], [mx, ml - 1]]));
  b.push(box(mx - bwid / 2, ml, bwid, 58, "mlp", { kind: "mlp", monoTitle: true, titleSize: 14, sub: ["c_fc: C → 4C, GELU", "c_proj: 4C → C"], monoSub: true, subSize: 12 }));
  const a2 = ml + 58 + 22;
  b.push(arrow([[mx, ml + 58], [mx, a2 - 11]]));
  b.push(opCircle(mx, a2, "+"));
  b.push(arrow([[mx, f2], [px, f2], [px, a2], [mx - 11, a2]]));
  b.push(arrow([[mx, a2 + 10], [mx, a2 + 34]]));
  b.push(shape(mx + 8, a2 + 30, "(B, T, C)"));
  b.push(text(px + 8, f1 + 17, "residual", { size: 12, fill: MUTED }));
  b.push(text(px + 8, f2 + 17, "residual", { size: 12, fill: MUTED }));
  b.push(text(mx + 16, a1 + 4.5, "x + attn(ln_1(x))", { size: 12, mono: true }));
  b.push(text(mx + 16, a2 + 4.5, "x + mlp(ln_2(x))", { size: 12, mono: true }));

  // sizes
  const ty = iy + ih + 36;
  b.push(text(ix, ty, "Sizes", { size: 14, weight: "bold" }));
  const cols = [ix, ix + 100, ix + 134, ix + 170, ix + 216, ix + 282];
  const head = ["", "L", "nh", "C", "context", "V"];
  const rows = [
    ["course", "4", "4", "128", "128", "vocab.*"],
    ["GPT-2 small", "12", "12", "768", "1,024", "50,257"],
  ];
  head.forEach((h, j) => b.push(text(cols[j], ty + 24, h, { size: 13, weight: "bold", fill: MUTED })));
  rows.forEach((row, i) => row.forEach((v, j) => b.push(text(cols[j], ty + 46 + i * 20, v, { size: 13, mono: j > 0 }))));
  b.push(line([[ix, ty + 31], [ix + iw, ty + 31]], { color: KIND.data.stroke, sw: 1 }));
  b.push(lines(ix, ty + 104, ["* the tokenizer's vocabulary: 86 characters in ch 04–05", "B: sequences in a batch; T ≤ context: tokens"], { size: 12, fill: MUTED, lineHeight: 16 }));
  return {
    width: W,
    height: H,
    title: "GPT: the forward pass, shape by shape",
    desc:
      "Token ids of shape (B, T) are looked up in the token embedding wte, of shape (V, C); positions 0 to T−1 are looked up in the position embedding wpe, of shape (T_max, C). " +
      "Their sum, (B, T, C), runs through L = 4 blocks h.0 to h.3, each containing attn and mlp, keeping the shape (B, T, C). " +
      "The final LayerNorm ln_f follows, then the output head multiplies by the transpose of wte (the weights are tied: the same matrix), giving logits of shape (B, T, V). " +
      "An inset shows one pre-LN block: x plus attn of ln_1 of x, where attn has c_attn (C to 3C, queries, keys and values) and c_proj (C to C); then x plus mlp of ln_2 of x, where mlp has c_fc (C to 4C), GELU and c_proj (4C to C). " +
      "A table lists the sizes: the course model has L = 4, nh = 4, C = 128, context 128; GPT-2 small has L = 12, nh = 12, C = 768, context 1,024, V = 50,257.",
    body: b.join("\n"),
  };
});

// ================================================================ 3. qkv-head.svg

/** Cell colours from white towards a kind's stroke colour, by a value in [0, 1]. */
const tint = (kind, t) => mix("#ffffff", KIND[kind].stroke, 0.1 + 0.5 * t);

diagram("qkv-head", () => {
  const W = 800;
  const H = 578;
  const b = [];
  b.push(heading("One attention head: softmax(QKᵀ / √d_{k} + M) V"));
  const c = 24; // cell size
  const T = 4;
  const C = 8;
  const dk = 4;
  const rowY = [84, 236, 388]; // tops of the Q, K and V rows
  const gh = T * c; // grid height
  const X = { x: 24, y: rowY[1] };
  const qx = 346; // Q, K, V column
  // x
  const rnd = shades(7);
  b.push(text(X.x, X.y - 10, "x  (T, C)", { size: 14, weight: "bold" }));
  b.push(grid(X.x, X.y, T, C, c, { fill: () => tint("token", rnd()), stroke: KIND.token.stroke }));
  b.push(lines(X.x, X.y + gh + 20, ["one row per token"], { size: 12, fill: MUTED }));
  // projections
  const names = ["Q", "K", "V"];
  const full = ["queries", "keys", "values"];
  const forkX = X.x + C * c + 16;
  b.push(line([[X.x + C * c, X.y + gh / 2], [forkX, X.y + gh / 2]]));
  b.push(line([[forkX, rowY[0] + gh / 2], [forkX, rowY[2] + gh / 2]]));
  b.push(dot(forkX, X.y + gh / 2));
  names.forEach((n, i) => {
    const cy = rowY[i] + gh / 2;
    b.push(arrow([[forkX, cy], [qx - 1, cy]]));
    b.push(rect(forkX + 14, cy - 21, 74, 42, { kind: "attn" }));
    b.push(text(forkX + 51, cy - 3, `· W_{${n}}`, { size: 14, anchor: "middle", weight: "bold" }));
    b.push(text(forkX + 51, cy + 14, "(C, d_{k})", { size: 12, anchor: "middle", fill: MUTED }));
    const r2 = shades(11 + i);
    b.push(text(qx + (dk * c) / 2, rowY[i] - 10, `${full[i]} ${n}  (T, d_{k})`, { size: 14, anchor: "middle", weight: "bold" }));
    b.push(grid(qx, rowY[i], T, dk, c, { fill: () => tint("attn", r2()), stroke: KIND.attn.stroke }));
  });
  // scores, mask, softmax
  const S = [
    [0.9, -0.4, 1.3, 0.2],
    [0.5, 1.1, -0.7, 0.8],
    [-0.2, 0.6, 0.4, -1.0],
    [1.1, -0.3, 0.7, 0.2],
  ];
  const A = S.map((row, i) => {
    const e = row.map((s, j) => (j <= i ? Math.exp(s) : 0));
    const z = e.reduce((a, v) => a + v, 0);
    return e.map((v) => v / z);
  });
  const fmt = (v) => (v === 0 ? "0" : v > 0.995 ? "1" : v.toFixed(2).replace(/^0/, ""));
  const sx = 490; // scores grid
  const mx = 660; // masked scores, weights and output
  const sy = rowY[0];
  const norm = (v) => (v + 1.1) / 2.5;
  b.push(text(sx + (T * c) / 2, sy - 10, "QKᵀ / √d_{k}  (T, T)", { size: 14, anchor: "middle", weight: "bold" }));
  b.push(grid(sx, sy, T, T, c, { fill: (i, j) => tint("attn", norm(S[i][j])), stroke: KIND.attn.stroke }));
  b.push(text(mx + (T * c) / 2, sy - 10, "+ causal mask M", { size: 14, anchor: "middle", weight: "bold" }));
  b.push(grid(mx, sy, T, T, c, { fill: (i, j) => (j > i ? KIND.masked.fill : tint("attn", norm(S[i][j]))), stroke: KIND.attn.stroke }));
  // Q → scores, K → scores (as Kᵀ)
  b.push(arrow([[qx + dk * c, rowY[0] + gh / 2], [sx - 1, rowY[0] + gh / 2]]));
  const kx = sx + (T * c) / 2;
  b.push(arrow([[qx + dk * c, rowY[1] + gh / 2], [kx, rowY[1] + gh / 2], [kx, sy + gh + 1]]));
  b.push(text(kx + 8, sy + gh + 34, "Kᵀ", { size: 14, weight: "bold" }));
  b.push(text(qx + dk * c + 10, rowY[0] + gh / 2 - 8, "Q", { size: 14, weight: "bold" }));
  b.push(arrow([[sx + T * c, sy + gh / 2], [mx - 1, sy + gh / 2]]));
  // weights
  const ay = rowY[1];
  b.push(arrow([[mx + (T * c) / 2, sy + gh], [mx + (T * c) / 2, ay - 1]]));
  b.push(lines(mx + (T * c) / 2 + 10, sy + gh + 24, ["softmax,", "row by row"], { size: 13, lineHeight: 15 }));
  b.push(grid(mx, ay, T, T, c, { fill: (i, j) => (j > i ? KIND.masked.fill : tint("attn", A[i][j])), stroke: KIND.attn.stroke, label: (i, j) => fmt(A[i][j]) }));
  b.push(lines(mx - 12, ay + 40, ["weights A", "(T, T)"], { size: 14, anchor: "end", weight: "bold", lineHeight: 18 }));
  b.push(lines(mx - 12, ay + 78, ["each row sums to 1"], { size: 12, anchor: "end", fill: MUTED }));
  // output = A · V
  const oy = rowY[2];
  b.push(arrow([[mx + (T * c) / 2, ay + gh], [mx + (T * c) / 2, oy - 1]]));
  b.push(arrow([[qx + dk * c, oy + gh / 2], [mx - 1, oy + gh / 2]]));
  b.push(text(mx + (T * c) / 2 + 10, ay + gh + 30, "A · V", { size: 14, weight: "bold" }));
  const ro = shades(23);
  b.push(grid(mx, oy, T, dk, c, { fill: () => tint("attn", ro()), stroke: KIND.attn.stroke }));
  b.push(text(mx + (T * c) / 2, oy + gh + 22, "output (T, d_{k})", { size: 14, anchor: "middle", weight: "bold" }));
  b.push(lines(mx + (T * c) / 2, oy + gh + 40, ["row i: Σ_{j} A_{ij} v_{j}"], { size: 12, anchor: "middle", fill: MUTED }));
  // legend and note
  const ly = oy + gh + 60;
  b.push(rect(24, ly - 12, 14, 14, { fill: KIND.masked.fill, stroke: KIND.attn.stroke, rx: 0, sw: 1 }));
  b.push(text(46, ly, "masked: key j after query i, score + (−10⁹), weight exactly 0", { size: 12, fill: MUTED }));
  b.push(text(24, ly + 20, "Drawn with chapter 02's sizes: T = 4 tokens, C = 8, d_{k} = 4. In the course model one head has d_{k} = hs = C / nh = 32.", { size: 12, fill: MUTED }));
  return {
    width: W,
    height: H,
    title: "One attention head",
    desc:
      "The input x, of shape (T, C), one row per token, is multiplied by three weight matrices W_Q, W_K and W_V, each of shape (C, d_k), giving queries Q, keys K and values V, each (T, d_k). " +
      "Q times K transposed, divided by the square root of d_k, gives a (T, T) matrix of scores. The causal mask M hides the keys after each query (the cells above the diagonal): they get a score of minus 10 to the 9 and a weight of exactly 0. " +
      "A softmax over each row turns the scores into weights A that sum to 1 per row: the first row is 1, 0, 0, 0. The output, of shape (T, d_k), is A times V: row i is the weighted average of the values. " +
      "Drawn for T = 4, C = 8, d_k = 4; in the course model a head has d_k = hs = 32.",
    body: b.join("\n"),
  };
});

// ================================================================ 4. multi-head.svg

/** A tensor (T, width) drawn as a bar of T rows, split into segments [{w, fill, label}]. */
function tensorBar(x, y, segments, { rows = 4, rowH = 12, stroke = KIND.attn.stroke, labelSize = 12 } = {}) {
  const out = [];
  const labels = [];
  let cx = x;
  for (const seg of segments) {
    out.push(`<rect x="${r(cx)}" y="${r(y)}" width="${r(seg.w)}" height="${rows * rowH}" fill="${seg.fill}" stroke="${stroke}" stroke-width="1"/>`);
    if (seg.label) {
      // a halo in the cell's colour keeps the row lines from crossing the label
      const t = text(cx + seg.w / 2, y + (rows * rowH) / 2 + 4.5, seg.label, { size: labelSize, anchor: "middle", mono: true, weight: "bold" });
      labels.push(t.replace("<text ", `<text stroke="${seg.fill}" stroke-width="4" stroke-linejoin="round" paint-order="stroke" `));
    }
    cx += seg.w;
  }
  const total = cx - x;
  for (let i = 1; i < rows; i++) out.push(`<path d="M${r(x)},${r(y + i * rowH)} H${r(x + total)}" stroke="${stroke}" stroke-width="0.6" stroke-opacity="0.45"/>`);
  out.push(...labels);
  out.push(`<rect x="${r(x)}" y="${r(y)}" width="${r(total)}" height="${rows * rowH}" fill="none" stroke="${stroke}" stroke-width="${SW}"/>`);
  return out.join("\n");
}

const HEAD_TINTS = [0.14, 0.3, 0.46, 0.62].map((t) => mix("#ffffff", KIND.attn.stroke, t));

diagram("multi-head", () => {
  const W = 800;
  const H = 596;
  const b = [];
  b.push(heading("Multi-head attention: nh heads side by side"));
  const hs = 32; // 1 px per channel: C = 128, nh = 4
  const y1 = 86;
  const th = 48; // T rows drawn
  // x → c_attn → q, k, v
  b.push(text(24, y1 - 12, "x  (B, T, C)", { size: 14, weight: "bold" }));
  b.push(tensorBar(24, y1, [{ w: 4 * hs, fill: KIND.token.fill }], { stroke: KIND.token.stroke }));
  b.push(arrow([[24 + 4 * hs, y1 + th / 2], [186 - 1, y1 + th / 2]]));
  b.push(box(186, y1 - 2, 104, th + 4, "c_attn", { kind: "attn", monoTitle: true, titleSize: 14, sub: [{ t: "C → 3C", mono: true }] }));
  const qx = 330;
  b.push(arrow([[290, y1 + th / 2], [qx - 1, y1 + th / 2]]));
  const segs = [];
  for (const n of ["q", "k", "v"]) for (let h = 0; h < 4; h++) segs.push({ w: hs, fill: HEAD_TINTS[h], label: `${n}${h}` });
  b.push(tensorBar(qx, y1, segs));
  ["q", "k", "v"].forEach((n, i) => {
    const x0 = qx + i * 4 * hs;
    if (i) b.push(`<path d="M${x0},${y1 - 4} V${y1 + th + 4}" stroke="${INK}" stroke-width="2.5"/>`);
    b.push(hbrace(x0 + 2, x0 + 4 * hs - 2, y1 - 6, 1));
    b.push(text(x0 + 2 * hs, y1 - 24, `${n}  (B, T, C)`, { size: 13, anchor: "middle", weight: "bold" }));
  });
  b.push(text(qx + 12 * hs, y1 + th + 18, "(B, T, 3C)", { size: 13, mono: true, fill: MUTED, anchor: "end" }));
  // split into heads
  const py = 230; // panels
  const pw = 178;
  const pg = 14;
  const px0 = (W - (4 * pw + 3 * pg)) / 2;
  const splitY = y1 + th + 6;
  b.push(arrow([[qx + 6 * hs, splitY], [qx + 6 * hs, py - 23]]));
  b.push(lines(24, splitY + 26, ["split q, k and v into heads: channels h·hs … (h+1)·hs − 1 go to head h;", "reshape to (B, T, nh, hs), transpose to (B, nh, T, hs)"], { size: 12.5, lineHeight: 17 }));
  b.push(rect(px0 - 10, py - 22, 4 * pw + 3 * pg + 20, 240, { kind: "plain", dashed: true, stroke: KIND.data.stroke }));
  b.push(text(px0, py - 4, "nh = 4 heads in parallel: one batched matmul over (B, nh)", { size: 12.5, fill: MUTED }));
  b.push(text(px0 + 4 * pw + 3 * pg, py - 4, "(B, nh, T, hs) = (B, 4, T, 32)", { size: 12.5, mono: true, fill: MUTED, anchor: "end" }));
  for (let h = 0; h < 4; h++) {
    const x = px0 + h * (pw + pg);
    const cxp = x + pw / 2;
    b.push(rect(x, py + 4, pw, 206, { kind: "plain", stroke: KIND.attn.stroke }));
    b.push(text(x + 10, py + 24, `head ${h}`, { size: 13, weight: "bold" }));
    const bx0 = cxp - (3 * hs + 2 * 10) / 2;
    ["q", "k", "v"].forEach((n, i) => b.push(tensorBar(bx0 + i * (hs + 10), py + 34, [{ w: hs, fill: HEAD_TINTS[h], label: `${n}${h}` }])));
    b.push(arrow([[cxp, py + 34 + th], [cxp, py + 100 - 1]]));
    b.push(box(x + 10, py + 100, pw - 20, 46, "attention", { kind: "attn", titleSize: 13, sub: ["softmax(qkᵀ/√hs + M) v"], subSize: 12 }));
    b.push(arrow([[cxp, py + 146], [cxp, py + 156 - 1]]));
    b.push(tensorBar(cxp - hs / 2, py + 156, [{ w: hs, fill: HEAD_TINTS[h], label: `o${h}` }], { rowH: 11 }));
  }
  // merge the heads
  const y3 = 520;
  const mx0 = 174;
  for (let h = 0; h < 4; h++) {
    const x = px0 + h * (pw + pg) + pw / 2;
    const sx = mx0 + h * hs + hs / 2;
    b.push(arrow([[x, py + 156 + 44], [x, py + 236], [sx, y3 - 24], [sx, y3 - 1]]));
  }
  b.push(lines(24, y3 + 12, ["concatenate:", "transpose back", "and reshape"], { size: 12.5, lineHeight: 16 }));
  b.push(tensorBar(mx0, y3, [0, 1, 2, 3].map((h) => ({ w: hs, fill: HEAD_TINTS[h], label: `o${h}` }))));
  b.push(text(mx0 + 2 * hs, y3 + th + 20, "(B, T, C)", { size: 13, mono: true, fill: MUTED, anchor: "middle" }));
  const cpx = mx0 + 4 * hs + 44;
  b.push(arrow([[mx0 + 4 * hs, y3 + th / 2], [cpx - 1, y3 + th / 2]]));
  b.push(box(cpx, y3 - 2, 104, th + 4, "c_proj", { kind: "attn", monoTitle: true, titleSize: 14, sub: [{ t: "C → C", mono: true }] }));
  const ox = cpx + 104 + 44;
  b.push(arrow([[cpx + 104, y3 + th / 2], [ox - 1, y3 + th / 2]]));
  b.push(tensorBar(ox, y3, [{ w: 4 * hs, fill: mix("#ffffff", KIND.attn.stroke, 0.3) }]));
  b.push(text(ox + 2 * hs, y3 + th + 20, "output (B, T, C)", { size: 13, mono: true, fill: MUTED, anchor: "middle" }));
  b.push(lines(ox + 4 * hs + 14, y3 + 14, ["mixes the heads;", "added to the", "residual stream"], { size: 12, fill: MUTED, lineHeight: 15 }));
  return {
    width: W,
    height: H,
    title: "Multi-head attention",
    desc:
      "Drawn for the course model, C = 128 channels, nh = 4 heads of hs = 32 channels, one pixel per channel. " +
      "The input x, (B, T, C), goes through c_attn (C to 3C), one matrix multiplication giving q, k and v side by side, (B, T, 3C). " +
      "Each of q, k and v is split into the 4 heads: channels h times hs to (h+1) times hs minus 1 go to head h; a reshape to (B, T, nh, hs) and a transpose give (B, nh, T, hs). " +
      "The 4 heads compute softmax(q k transposed / square root of hs + M) v in parallel, as one batched matrix multiplication over (B, nh), with no loop over heads. " +
      "Their outputs o0 to o3, (B, nh, T, hs), are transposed back and reshaped into (B, T, C), the heads side by side, and c_proj (C to C) mixes them into the output, (B, T, C), which is added to the residual stream.",
    body: b.join("\n"),
  };
});

// ================================================================ 5. blocks-pre-post-ln.svg

diagram("blocks-pre-post-ln", () => {
  const W = 800;
  const H = 594;
  const b = [];
  b.push(heading("Where the LayerNorm goes: pre-LN and post-LN blocks"));
  const RES = 2.2; // residual lines a little heavier
  const bw = 150; // sub-layer box width
  const lw = 110; // LayerNorm box width
  const col = (cx, pre) => {
    const out = [];
    const px = cx - 118; // bypass
    out.push(text(cx - 150, 74, pre ? "Pre-LN (GPT-2)" : "Post-LN (original Transformer, 2017)", { size: 15, weight: "bold" }));
    out.push(text(cx - 150, 94, pre ? "x ← x + f(LN(x))" : "x ← LN(x + f(x))", { size: 13, mono: true, fill: MUTED }));
    out.push(shape(cx, 122, "x (B, T, C)", "middle"));
    const f1 = 142;
    out.push(line([[cx, 128], [cx, f1]]));
    out.push(dot(cx, f1));
    const sub = (y0, lnName, fName, kind) => {
      // one sub-layer with its residual connection, starting at the fork y0; returns the y where it ends
      let y = y0 + 16;
      let addY;
      if (pre) {
        out.push(arrow([[cx, y0], [cx, y - 1]]));
        out.push(box(cx - lw / 2, y, lw, 30, lnName, { kind: "norm", monoTitle: true, titleSize: 14 }));
        y += 30 + 16;
        out.push(arrow([[cx, y - 16], [cx, y - 1]]));
        out.push(box(cx - bw / 2, y, bw, 40, fName, { kind, monoTitle: true, titleSize: 14 }));
        y += 40;
        addY = y + 26;
        out.push(arrow([[cx, y], [cx, addY - 11]]));
        out.push(opCircle(cx, addY, "+"));
        out.push(arrow([[cx, y0], [px, y0], [px, addY], [cx - 11, addY]], { sw: RES }));
        out.push(text(cx + 18, addY + 4.5, `x + ${fName}(${lnName}(x))`, { size: 12.5, mono: true }));
        return addY + 10;
      }
      out.push(arrow([[cx, y0], [cx, y - 1]]));
      out.push(box(cx - bw / 2, y, bw, 40, fName, { kind, monoTitle: true, titleSize: 14 }));
      y += 40;
      addY = y + 26;
      out.push(arrow([[cx, y], [cx, addY - 11]]));
      out.push(opCircle(cx, addY, "+"));
      out.push(arrow([[cx, y0], [px, y0], [px, addY], [cx - 11, addY]], { sw: RES }));
      const ly = addY + 10 + 16;
      out.push(arrow([[cx, addY + 10], [cx, ly - 1]]));
      out.push(box(cx - lw / 2, ly, lw, 30, lnName, { kind: "norm", monoTitle: true, titleSize: 14 }));
      out.push(text(cx + lw / 2 + 10, ly + 20, `${lnName}(x + ${fName}(x))`, { size: 12.5, mono: true }));
      return ly + 30;
    };
    const e1 = sub(f1, "ln_1", "attn", "attn");
    const f2 = e1 + 20;
    out.push(line([[cx, e1], [cx, f2]]));
    out.push(dot(cx, f2));
    const e2 = sub(f2, "ln_2", "mlp", "mlp");
    const end = e2 + 36;
    out.push(arrow([[cx, e2], [cx, end]]));
    out.push(shape(cx + 8, end - 4, "(B, T, C)"));
    out.push(text(px - 8, (f1 + e1) / 2 + 4, "residual", { size: 12, fill: MUTED, anchor: "end" }));
    out.push(text(px - 8, (f2 + e2) / 2 + 4, "residual", { size: 12, fill: MUTED, anchor: "end" }));
    return { body: out.join("\n"), end };
  };
  const left = col(200, true);
  const right = col(592, false);
  b.push(left.body, right.body);
  b.push(line([[400, 62], [400, 540]], { color: KIND.data.stroke, sw: 1, dashed: true }));
  const ny = 496;
  b.push(lines(50, ny, ["The residual path is a plain sum that no LayerNorm", "touches: a clean identity from output to input.", "The stack ends with one final LayerNorm (ln_f)."], { size: 12.5, lineHeight: 17, fill: MUTED }));
  b.push(lines(442, ny, ["Every path passes through a LayerNorm after each", "addition; the block's output is always normalised.", "Deep stacks need a careful learning-rate warm-up."], { size: 12.5, lineHeight: 17, fill: MUTED }));
  b.push(text(W / 2, H - 16, "The same modules (ln_1, attn, ln_2, mlp), wired differently: the library's blocks take preNorm: true | false.", { size: 12.5, anchor: "middle" }));
  return {
    width: W,
    height: H,
    title: "Pre-LN and post-LN Transformer blocks",
    desc:
      "Two blocks side by side, each made of an attention sub-layer and an MLP sub-layer with a residual connection drawn as a bypass line. " +
      "Left, pre-LN as in GPT-2: x becomes x + attn(ln_1(x)), then x + mlp(ln_2(x)); the residual path is a plain sum that no LayerNorm touches, and the stack ends with a final LayerNorm, ln_f. " +
      "Right, post-LN as in the original 2017 Transformer: x becomes ln_1(x + attn(x)), then ln_2(x + mlp(x)); every path passes through a LayerNorm after each addition, and deep stacks need a learning-rate warm-up. " +
      "Both use the same modules, wired differently; the library's blocks take preNorm true or false.",
    body: b.join("\n"),
  };
});

// ================================================================ 6. encoder-decoder.svg

/**
 * One pre-LN sub-layer with its residual connection, drawn downwards from a fork at y0 on the axis cx.
 * side: −1 puts the bypass on the left, +1 on the right. Returns { svg, end, moduleY } (end: below the ⊕).
 */
function preLNSublayer(cx, y0, { ln, name, sub = [], kind, side = -1, bw = 190, lw = 130, bypass = 120, moduleH = 40 }) {
  const out = [];
  const px = cx + side * bypass;
  let y = y0 + 14;
  out.push(arrow([[cx, y0], [cx, y - 1]]));
  out.push(box(cx - lw / 2, y, lw, 26, ln, { kind: "norm", monoTitle: true, titleSize: 13 }));
  y += 26 + 12;
  out.push(arrow([[cx, y - 12], [cx, y - 1]]));
  out.push(box(cx - bw / 2, y, bw, moduleH, name, { kind, monoTitle: true, titleSize: 14, sub, subSize: 12 }));
  const moduleY = y + moduleH / 2;
  y += moduleH;
  const addY = y + 20;
  out.push(arrow([[cx, y], [cx, addY - 11]]));
  out.push(arrow([[cx, y0], [px, y0], [px, addY], [cx + side * 11, addY]], { sw: 2.2 }));
  out.push(opCircle(cx, addY, "+"));
  out.push(dot(cx, y0));
  return { svg: out.join("\n"), end: addY + 10, moduleY };
}

diagram("encoder-decoder", () => {
  const W = 800;
  const H = 920;
  const b = [];
  b.push(heading("The encoder-decoder Transformer"));
  const ex = 190; // encoder axis
  const dx = 582; // decoder axis
  b.push(text(ex, 64, "Encoder: reads the source", { size: 15, weight: "bold", anchor: "middle" }));
  b.push(text(dx, 64, "Decoder: writes the target", { size: 15, weight: "bold", anchor: "middle" }));
  // inputs
  const iy = 80;
  b.push(box(ex - 100, iy, 200, 44, "source ids", { kind: "data", titleSize: 14, sub: [{ t: "2 0 4 8 1", mono: true }] }));
  b.push(box(dx - 100, iy, 200, 44, "target ids (shifted)", { kind: "data", titleSize: 14, sub: [{ t: "<bos> 1 8 4 0 2", mono: true }] }));
  b.push(shape(ex + 104, iy + 27, "(B, T_{src})"));
  b.push(shape(dx + 104, iy + 27, "(B, T)"));
  const ey = iy + 44 + 24;
  b.push(arrow([[ex, iy + 44], [ex, ey - 1]]));
  b.push(arrow([[dx, iy + 44], [dx, ey - 1]]));
  b.push(box(ex - 110, ey, 220, 46, "source_embedding", { kind: "token", monoTitle: true, titleSize: 13.5, sub: ["× √C, + sinusoidal positions"], subSize: 12 }));
  b.push(box(dx - 110, ey, 220, 46, "target_embedding", { kind: "token", monoTitle: true, titleSize: 13.5, sub: ["× √C, + sinusoidal positions"], subSize: 12 }));
  // blocks
  const fy = ey + 46 + 62; // first fork
  const e1 = preLNSublayer(ex, fy, { ln: "ln_1", name: "attn", sub: ["self-attention, no mask"], kind: "attn", moduleH: 44 });
  const e2 = preLNSublayer(ex, e1.end + 16, { ln: "ln_2", name: "mlp", sub: [{ t: "C → 4C → C", mono: true }], kind: "mlp", moduleH: 44 });
  const d1 = preLNSublayer(dx, fy, { ln: "ln_1", name: "attn", sub: ["causal self-attention"], kind: "attn", side: 1, bypass: 136, moduleH: 44 });
  const crossW = 236;
  const d2 = preLNSublayer(dx, d1.end + 16, { ln: "ln_cross_attn", name: "crossattention", sub: ["queries from the decoder,", "keys and values from the encoder"], kind: "attn", side: 1, bypass: 136, bw: crossW, moduleH: 58 });
  const d3 = preLNSublayer(dx, d2.end + 16, { ln: "ln_2", name: "mlp", sub: [{ t: "C → 4C → C", mono: true }], kind: "mlp", side: 1, bypass: 136, moduleH: 44 });
  // frames first, so that everything else is drawn on top
  b.push(rect(ex - 150, fy - 30, 300, e2.end - fy + 46, { kind: "plain", dashed: true, stroke: KIND.data.stroke }));
  b.push(rect(dx - 150, fy - 30, 306, d3.end - fy + 46, { kind: "plain", dashed: true, stroke: KIND.data.stroke }));
  b.push(text(ex + 140, fy - 12, "encoder.n", { size: 13, weight: "bold", mono: true, anchor: "end" }));
  b.push(text(ex + 140, fy + 4, "N blocks (2 in ch 03)", { size: 12, fill: MUTED, anchor: "end" }));
  b.push(text(dx - 140, fy - 12, "decoder.n", { size: 13, weight: "bold", mono: true }));
  b.push(text(dx - 140, fy + 4, "N blocks (2 in ch 03)", { size: 12, fill: MUTED }));
  b.push(arrow([[ex, ey + 46], [ex, fy]], { head: false }));
  b.push(arrow([[dx, ey + 46], [dx, fy]], { head: false }));
  b.push(shape(ex + 8, ey + 46 + 19, "(B, T_{src}, C)"));
  b.push(shape(dx + 8, ey + 46 + 19, "(B, T, C)"));
  b.push(line([[ex, e1.end], [ex, e1.end + 16]]));
  b.push(line([[dx, d1.end], [dx, d1.end + 16]]));
  b.push(line([[dx, d2.end], [dx, d2.end + 16]]));
  b.push(e1.svg, e2.svg, d1.svg, d2.svg, d3.svg);
  // encoder output
  const lnE = e2.end + 46;
  b.push(arrow([[ex, e2.end], [ex, lnE - 1]]));
  b.push(box(ex - 65, lnE, 130, 28, "ln_enc", { kind: "norm", monoTitle: true, titleSize: 13 }));
  const memY = lnE + 28 + 26;
  b.push(arrow([[ex, lnE + 28], [ex, memY - 1]]));
  b.push(box(ex - 110, memY, 220, 46, "encoder output", { kind: "data", titleSize: 14, sub: [{ t: "(B, T_{src}, C)", mono: true }] }));
  // one vector per source position
  const vy = memY + 62;
  for (let i = 0; i < 5; i++) {
    const x = ex - 110 + 12 + i * 42;
    b.push(rect(x, vy, 30, 16, { kind: "data", rx: RX_CELL, sw: 1 }));
    b.push(text(x + 15, vy + 32, "20481"[i], { size: 12, mono: true, anchor: "middle", fill: MUTED }));
  }
  b.push(lines(ex - 110, vy + 58, ["one vector per source position (5 here),", "not one fixed-length summary vector: the", "decoder can look at every source token"], { size: 12.5, lineHeight: 16 }));
  // memory → every decoder block's cross-attention
  const chX = 398;
  b.push(arrow([[ex + 110, memY + 23], [chX, memY + 23], [chX, d2.moduleY], [dx - crossW / 2 - 1, d2.moduleY]], { sw: 2.2 }));
  b.push(lines(chX - 8, memY - 30, ["to the cross-", "attention of every", "decoder block"], { size: 12, fill: MUTED, lineHeight: 15, anchor: "end" }));
  // decoder output
  const lnD = d3.end + 30;
  b.push(arrow([[dx, d3.end], [dx, lnD - 1]]));
  b.push(box(dx - 65, lnD, 130, 28, "ln_dec", { kind: "norm", monoTitle: true, titleSize: 13 }));
  const hY = lnD + 28 + 20;
  b.push(arrow([[dx, lnD + 28], [dx, hY - 1]]));
  b.push(box(dx - 65, hY, 130, 28, "lm_head", { kind: "token", monoTitle: true, titleSize: 13 }));
  const oY = hY + 28 + 20;
  b.push(arrow([[dx, hY + 28], [dx, oY - 1]]));
  b.push(box(dx - 110, oY, 220, 44, "logits (B, T, V)", { kind: "data", titleSize: 14, sub: [{ t: "next: 1 8 4 0 2 <eos>", mono: true }] }));
  b.push(lines(24, H - 34, ["Drawn pre-LN, as the course builds it (preNorm: true, then ln_enc and ln_dec); the 2017 paper put each", "LayerNorm after the addition (post-LN). The example is chapter 03's task: reverse a string of digits."], { size: 12, fill: MUTED, lineHeight: 16 }));
  return {
    width: W,
    height: H,
    title: "The encoder-decoder Transformer",
    desc:
      "Left, the encoder: source ids (B, T_src), here the digits 2 0 4 8 1, go through source_embedding scaled by the square root of C plus sinusoidal positions, then N encoder blocks encoder.n. " +
      "Each encoder block has a self-attention sub-layer without a mask (ln_1, attn) and an MLP sub-layer (ln_2, mlp, C to 4C to C), each with a residual connection drawn as a bypass line. " +
      "After ln_enc, the encoder output has shape (B, T_src, C): one vector per source position, not one fixed-length summary vector. " +
      "Right, the decoder: target ids shifted right, here <bos> 1 8 4 0 2, go through target_embedding plus positions, then N decoder blocks decoder.n, each with three sub-layers and their residual connections: " +
      "causal self-attention (ln_1, attn), cross-attention (ln_cross_attn, crossattention) whose queries come from the decoder and whose keys and values come from the encoder output, and the MLP (ln_2, mlp). " +
      "The encoder output feeds the cross-attention of every decoder block. After ln_dec, lm_head gives logits (B, T, V) that predict 1 8 4 0 2 <eos>. " +
      "Drawn pre-LN, as the course builds it; the 2017 paper placed each LayerNorm after the addition.",
    body: b.join("\n"),
  };
});

// ================================================================ 7. kv-cache.svg

diagram("kv-cache", () => {
  const W = 800;
  const H = 700;
  const b = [];
  b.push(heading("Generation with a KV cache"));
  const toks = ["T", "h", "e", "␣", "C", "o"];
  const panel = (x0, cached) => {
    const out = [];
    const pw = 364;
    out.push(rect(x0, 48, pw, 326, { kind: "plain", stroke: KIND.data.stroke }));
    out.push(text(x0 + 16, 72, cached ? "With a KV cache" : "Without a cache", { size: 15, weight: "bold" }));
    out.push(text(x0 + 16, 91, cached ? "step t runs the model on the new token only" : "step t runs the model on all t tokens", { size: 12.5, fill: MUTED }));
    // token chips
    const cw = 36;
    const cg = 10;
    const cx0 = x0 + (pw - (6 * cw + 5 * cg)) / 2;
    const chipY = 270;
    const gy = 136; // model box
    const gh = 104;
    toks.forEach((t, i) => {
      const x = cx0 + i * (cw + cg);
      const fed = !cached || i === 5;
      out.push(rect(x, chipY, cw, 26, { kind: fed ? "token" : "data", rx: RX_CELL, dashed: !fed }));
      out.push(text(x + cw / 2, chipY + 18, t, { size: 14, mono: true, anchor: "middle", fill: fed ? INK : MUTED }));
      out.push(text(x + cw / 2, chipY + 44, String(i), { size: 12, anchor: "middle", fill: MUTED }));
      if (fed) out.push(arrow([[x + cw / 2, chipY], [x + cw / 2, gy + gh + 1]]));
    });
    out.push(text(cx0 - 8, chipY + 44, "pos.", { size: 12, anchor: "end", fill: MUTED }));
    if (cached) out.push(text(cx0 + (5 * (cw + cg) - cg) / 2, chipY - 9, "already in the cache", { size: 12, anchor: "middle", fill: MUTED }));
    out.push(rect(x0 + 14, gy, pw - 28, gh, { kind: "plain" }));
    // logits above the model
    const ly = 104;
    toks.forEach((t, i) => {
      const x = cx0 + i * (cw + cg);
      const used = i === 5;
      if (!cached || used) {
        out.push(line([[x + cw / 2, gy], [x + cw / 2, ly + 16]], { color: used ? LINE : KIND.data.stroke }));
        out.push(rect(x + 4, ly, cw - 8, 16, { kind: used ? "token" : "data", rx: RX_CELL, sw: 1 }));
      }
    });
    const last = cx0 + 5 * (cw + cg) + cw;
    out.push(arrow([[last - 4, ly + 8], [last + 22, ly + 8]]));
    out.push(text(last + 26, ly + 13, "n", { size: 14, mono: true, weight: "bold" }));
    if (!cached) {
      out.push(text(cx0 - 8, ly + 13, "logits", { size: 12, anchor: "end", fill: MUTED }));
      out.push(text(x0 + 26, gy + 20, "h.0 … h.3: every layer, all 6 positions", { size: 12.5 }));
      toks.forEach((t, i) => {
        const x = cx0 + i * (cw + cg);
        for (let l = 0; l < 4; l++) out.push(rect(x, gy + 30 + l * 17, cw, 13, { kind: "attn", rx: 2, sw: 1 }));
      });
      out.push(lines(x0 + 16, 346, ["only the last position's logits are used;", "the work per step grows with t"], { size: 12.5, fill: MUTED, lineHeight: 16 }));
    } else {
      out.push(text(last - cw - 10, ly + 13, "logits", { size: 12, anchor: "end", fill: MUTED }));
      const kx = x0 + 66;
      const vx = x0 + 204;
      const c = 19;
      out.push(text(kx + 3 * c, gy + 18, "keys", { size: 12.5, anchor: "middle", weight: "bold" }));
      out.push(text(vx + 3 * c, gy + 18, "values", { size: 12.5, anchor: "middle", weight: "bold" }));
      for (let l = 0; l < 4; l++) {
        const y = gy + 26 + l * 18;
        out.push(text(x0 + 24, y + 12, `h.${l}`, { size: 12, mono: true }));
        for (const sx of [kx, vx]) {
          for (let j = 0; j < 6; j++) {
            const isNew = j === 5;
            out.push(`<rect x="${r(sx + j * c)}" y="${r(y)}" width="${c - 2}" height="14" rx="2" fill="${isNew ? mix("#ffffff", KIND.attn.stroke, 0.75) : KIND.attn.fill}" stroke="${KIND.attn.stroke}" stroke-width="1"/>`);
          }
        }
      }
      out.push(lines(x0 + 16, 346, ["each layer appends the new key and value (dark):", "(B, nh, T_{past}, hs) → (B, nh, T_{past} + 1, hs)"], { size: 12.5, fill: MUTED, lineHeight: 17 }));
    }
    return out.join("\n");
  };
  b.push(panel(24, false));
  b.push(panel(412, true));
  // timeline
  const ty = 428;
  b.push(text(24, ty - 14, "A whole generation, and what happens when the context window is full", { size: 15, weight: "bold" }));
  const seg = [
    { w: 176, kind: "token", l: ["prefill: the whole", "prompt in one pass"] },
    { w: 300, kind: "attn", l: ["cached steps: 1 new token each; the", "cache grows up to contextLength (128)"] },
    { w: 276, kind: "data", l: ["window full: crop to the last 128 tokens", "and rebuild the cache, at every step"] },
  ];
  let sx = 24;
  b.push(`<clipPath id="kv-cache-timeline"><rect x="24" y="${ty}" width="752" height="44" rx="${RX}"/></clipPath>`);
  seg.forEach((sg) => {
    b.push(`<g clip-path="url(#kv-cache-timeline)">${rect(sx, ty, sg.w, 44, { kind: sg.kind, rx: 0 })}</g>`);
    b.push(lines(sx + sg.w / 2, ty + 18, sg.l, { size: 12.5, anchor: "middle", lineHeight: 16 }));
    sx += sg.w;
  });
  b.push(rect(24, ty, 752, 44, { fill: "none", stroke: LINE, rx: RX }));
  b.push(arrow([[24, ty + 58], [776, ty + 58]]));
  b.push(text(776, ty + 74, "steps", { size: 12, anchor: "end", fill: MUTED }));
  // sliding window
  const ry1 = 544;
  const ry2 = 620;
  const cw = 42;
  const x0 = 90;
  const before = ["x0", "x1", "x2", "x3", "…", "x126", "x127"];
  const after = ["x1", "x2", "x3", "x4", "…", "x127", "x128"];
  const posB = ["0", "1", "2", "3", "", "126", "127"];
  b.push(text(24, ry1 + 18, "window", { size: 12.5, weight: "bold" }));
  b.push(text(24, ry2 + 18, "cropped", { size: 12.5, weight: "bold" }));
  before.forEach((t, i) => {
    const x = x0 + i * (cw + 6);
    if (t !== "…") b.push(rect(x, ry1, cw, 26, { kind: i === 0 ? "data" : "token", rx: RX_CELL }));
    b.push(text(x + cw / 2, ry1 + 18, t, { size: 13, mono: true, anchor: "middle", fill: i === 0 ? MUTED : INK }));
    b.push(text(x + cw / 2, ry1 - 8, posB[i], { size: 12, anchor: "middle", fill: MUTED }));
  });
  const nx = x0 + 7 * (cw + 6) + 14;
  b.push(rect(nx, ry1, cw, 26, { kind: "token", rx: RX_CELL, dashed: true }));
  b.push(text(nx + cw / 2, ry1 + 18, "x128", { size: 13, mono: true, anchor: "middle" }));
  b.push(text(nx + cw / 2, ry1 - 8, "128?", { size: 12, anchor: "middle", fill: MUTED }));
  after.forEach((t, i) => {
    const x = x0 + i * (cw + 6);
    if (t !== "…") b.push(rect(x, ry2, cw, 26, { kind: "token", rx: RX_CELL }));
    b.push(text(x + cw / 2, ry2 + 18, t, { size: 13, mono: true, anchor: "middle" }));
    b.push(text(x + cw / 2, ry2 + 44, posB[i], { size: 12, anchor: "middle", fill: MUTED }));
  });
  b.push(text(x0 - 8, ry1 - 8, "position", { size: 12, anchor: "end", fill: MUTED }));
  b.push(text(x0 - 8, ry2 + 44, "position", { size: 12, anchor: "end", fill: MUTED }));
  // every kept token moves one position to the left
  for (const i of [1, 2, 3, 6]) {
    const xa = x0 + i * (cw + 6) + cw / 2;
    const xb = x0 + (i - 1) * (cw + 6) + cw / 2;
    b.push(arrow([[xa, ry1 + 26], [xb, ry2 - 1]], { color: KIND.token.stroke }));
  }
  b.push(arrow([[nx + cw / 2, ry1 + 26], [x0 + 6 * (cw + 6) + cw / 2 + 6, ry2 - 1]], { color: KIND.token.stroke }));
  b.push(lines(506, ry1 - 8, ["wpe has no row 128: the window slides", "by one and x0 drops out. Every kept", "token moves one position to the left", "(x1 from 1 to 0): its position embedding", "changes, and so does every key and value.", "The cache is rebuilt from the cropped", "window: the same work as without a cache."], { size: 12.5, lineHeight: 17 }));
  return {
    width: W,
    height: H,
    title: "Generation with a KV cache",
    desc:
      "Left, without a cache: at step t the model runs on all t tokens so far (here the 6 characters T, h, e, space, C, o), through every layer h.0 to h.3, and only the last position's logits are used to pick the next token, n; the work per step grows with t. " +
      "Right, with a KV cache: only the new token, o at position 5, runs through the model. Each layer keeps the keys and values of the earlier positions, appends the new key and value, (B, nh, T_past, hs) becomes (B, nh, T_past + 1, hs), and the new query attends over all of them. " +
      "Below, a whole generation: a prefill runs the prompt in one pass; then each step adds one token and the cache grows up to the context length, 128; once the window is full, the text is cropped to its last 128 tokens and the cache is rebuilt at every step. " +
      "There is no position 128 in wpe, so the window slides by one: token x0 drops out and every other token moves one position to the left (x1 from 1 to 0), which changes its position embedding and all keys and values; the cache is therefore rebuilt from the cropped window, the same work as without a cache.",
    body: b.join("\n"),
  };
});

// ================================================================ 8. chat-template.svg

diagram("chat-template", () => {
  const W = 800;
  const H = 752;
  const b = [];
  b.push(heading("The chat template, and what the model is graded on"));
  // One conversation, tokenized by the course's chat tokenizer (chapter 07: BPE, every digit its own token).
  const tokens = ["<|user|>", "What", "␣is", "␣", "4", "7", "␣+", "␣", "3", "8", "?", "<|end|>", "<|assistant|>", "4", "7", "␣+", "␣", "3", "8", "␣is", "␣", "8", "5", "<|end|>"];
  const ids = [1537, 415, 301, 32, 52, 55, 416, 32, 51, 56, 63, 1539, 1538, 52, 55, 416, 32, 51, 56, 301, 32, 56, 53, 1539];
  const assistant = tokens.map((_, i) => (i >= 13 ? 1 : 0)); // renderConversation's assistantMask
  const special = (t) => t.startsWith("<|");
  const target = (t) => (assistant[t + 1] ? String(ids[t + 1]) : "−100");
  const mw = (str) => textWidth(str, 13, { mono: true });
  const colW = (t) => Math.max(34, Math.max(mw(tokens[t]), mw(tokens[t + 1]), mw(target(t))) + 12);
  b.push(text(24, 60, "<|user|>What is 47 + 38?<|end|><|assistant|>47 + 38 is 85<|end|>", { size: 13, mono: true }));
  b.push(text(776, 60, "24 tokens, 23 positions", { size: 12.5, fill: MUTED, anchor: "end" }));
  const x0 = 100;
  const gap = 3;
  const chip = (x, y, w, t, { kind, fill, bold } = {}) => {
    const k = kind ?? (special(t) ? "token" : "plain");
    return `${rect(x, y, w, 26, { kind: k, rx: RX_CELL, sw: 1.2, stroke: k === "plain" ? KIND.data.stroke : undefined })}\n${text(x + w / 2, y + 17.5, t, { size: 13, mono: true, anchor: "middle", weight: bold || special(t) ? "bold" : undefined, fill: fill ?? INK })}`;
  };
  const band = (from, to, y, label, graded) => {
    const out = [];
    out.push(text(x0, y, label, { size: 13, weight: "bold", fill: graded ? KIND.train.stroke : MUTED }));
    const py = y + 20; // positions
    const iy = py + 6; // inputs
    const ny = iy + 26 + 16; // next tokens
    const tyy = ny + 26 + 6; // targets
    out.push(text(x0 - 10, py, "t", { size: 12, fill: MUTED, anchor: "end", italic: true }));
    out.push(text(x0 - 10, iy + 17.5, "input", { size: 13, anchor: "end" }));
    out.push(text(x0 - 10, ny + 17.5, "next token", { size: 13, anchor: "end" }));
    out.push(text(x0 - 10, tyy + 17.5, "target", { size: 13, anchor: "end", weight: "bold" }));
    const xs = [];
    let x = x0;
    for (let t = from; t <= to; t++) {
      xs.push(x);
      x += colW(t) + gap;
    }
    // the shift: token t + 1 is the next token at t
    for (let t = from; t < to; t++) {
      const i = t - from;
      out.push(line([[xs[i + 1] + colW(t + 1) / 2, iy + 26], [xs[i] + colW(t) / 2, ny]], { color: KIND.token.stroke, sw: 1 }));
    }
    for (let t = from; t <= to; t++) {
      const i = t - from;
      const w = colW(t);
      out.push(text(xs[i] + w / 2, py, String(t), { size: 12, anchor: "middle", fill: MUTED }));
      out.push(chip(xs[i], iy, w, tokens[t]));
      out.push(chip(xs[i], ny, w, tokens[t + 1]));
      const g = assistant[t + 1] === 1;
      out.push(chip(xs[i], tyy, w, target(t), { kind: g ? "train" : "data", fill: g ? INK : MUTED, bold: g }));
    }
    return { svg: out.join("\n"), bottom: tyy + 26 };
  };
  const b1 = band(0, 11, 90, "given, not graded: the role markers and the user's text", false);
  const b2 = band(12, 22, b1.bottom + 30, "graded: the assistant's answer and its <|end|>, which teaches it to stop", true);
  b.push(b1.svg, b2.svg);
  // legend
  const ly = b2.bottom + 30;
  b.push(rect(x0, ly - 13, 16, 16, { kind: "train", rx: RX_CELL, sw: 1.2 }));
  b.push(text(x0 + 24, ly, "the id the model must predict: the loss averages −log p over these 11 positions only", { size: 12.5 }));
  b.push(rect(x0, ly + 9, 16, 16, { kind: "data", rx: RX_CELL, sw: 1.2 }));
  b.push(text(x0 + 24, ly + 22, "−100 = IGNORE_INDEX: crossEntropy skips it, and its gradient is exactly 0", { size: 12.5 }));
  b.push(text(x0 + 24, ly + 44, "ids from chapter 07's tokenizer; ␣ is a space; the final <|end|> is only ever a target", { size: 12, fill: MUTED }));
  // packing
  const py0 = ly + 88;
  b.push(line([[24, py0 - 26], [776, py0 - 26]], { color: KIND.data.stroke, sw: 1 }));
  b.push(text(24, py0, "Packing: whole conversations end to end in one row", { size: 15, weight: "bold" }));
  const convs = [
    { lines: ["<|user|>Name the capital of France.<|end|>", "<|assistant|>Paris<|end|>"], n: 15, graded: [10, 11, 12, 13], fill: KIND.token.fill },
    { lines: ["<|user|>Name the capital of Togo.<|end|>", "<|assistant|>Lome<|end|>"], n: 14, graded: [10, 11, 12], fill: mix(KIND.token.fill, KIND.token.stroke, 0.28) },
  ];
  const cw = 23;
  const rowY = py0 + 64;
  const labels = [
    ["documentIds", (d) => (d < 0 ? "−1" : String(d))],
    ["positions", (d, t) => String(t)],
    ["targets", (d, t, g) => (g ? "" : "·")],
  ];
  labels.forEach(([name], k) => b.push(text(x0 - 10, rowY + 26 + k * 28 + 17.5, name, { size: 12.5, mono: true, anchor: "end" })));
  let x = x0;
  const cells = [];
  convs.forEach((c, d) => {
    const start = x;
    for (let t = 0; t < c.n - 1; t++) {
      cells.push({ x, d, t, g: c.graded.includes(t), fill: c.fill });
      x += cw;
    }
    b.push(hbrace(start + 1, x - 1, rowY + 18, 1));
    b.push(lines(start + 2, rowY - 14, c.lines, { size: 12, mono: true, lineHeight: 15 }));
    b.push(text(start + 2, rowY - 30, `conversation ${d}: ${c.n} tokens → ${c.n - 1} positions`, { size: 12, fill: MUTED }));
  });
  for (let i = 0; i < 2; i++) {
    cells.push({ x, d: -1, t: 0, g: false, fill: KIND.data.fill });
    x += cw;
  }
  b.push(text(x - cw, rowY + 26 + 3 * 28 + 12, "padding", { size: 12, fill: MUTED, anchor: "middle" }));
  labels.forEach(([, f], k) => {
    cells.forEach((c) => {
      const y = rowY + 26 + k * 28;
      const fill = k === 2 ? (c.g ? KIND.train.fill : KIND.data.fill) : c.fill;
      const stroke = k === 2 && c.g ? KIND.train.stroke : KIND.data.stroke;
      b.push(`<rect x="${r(c.x)}" y="${r(y)}" width="${cw}" height="24" fill="${fill}" stroke="${stroke}" stroke-width="1"/>`);
      b.push(text(c.x + cw / 2, y + 17, f(c.d, c.t, c.g), { size: 12, anchor: "middle", mono: true, fill: k === 2 ? MUTED : INK }));
    });
  });
  const ny = rowY + 26 + 3 * 28 + 22;
  b.push(lines(x0, ny, [
    "documentIds: attention stays inside its own conversation (a block-diagonal causal mask);",
    "positions restart at 0 with each conversation, as when the model chats;",
    "targets: · is −100 (IGNORE_INDEX); only the assistant's tokens are graded;",
    "padding fills the rest of the row: token 0 in document −1, never a target.",
  ], { size: 12.5, lineHeight: 17 }));
  return {
    width: W,
    height: H,
    title: "The chat template, loss masking and packing",
    desc:
      "The conversation <|user|>What is 47 + 38?<|end|><|assistant|>47 + 38 is 85<|end|> is 24 tokens in the course's chat tokenizer, every digit a token of its own, giving 23 positions. " +
      "For each position t the figure shows the input token, the next token (the input shifted by one) and the target. " +
      "Positions 0 to 11, whose next tokens are the role markers and the user's text, have target −100, IGNORE_INDEX, which the cross-entropy skips. " +
      "Positions 12 to 22, whose next tokens are the assistant's answer 4 7 + 3 8 is 8 5 and its closing <|end|>, have the token ids as targets and are graded. " +
      "A second panel shows packing: two conversations, Name the capital of France / Paris (15 tokens, 14 positions) and Name the capital of Togo / Lome (14 tokens, 13 positions), end to end in one row, followed by two padding positions. " +
      "documentIds are 0 for the first conversation, 1 for the second and −1 for padding; positions restart at 0 for each conversation; only the assistant's tokens have targets, everything else is −100.",
    body: b.join("\n"),
  };
});

// ================================================================ write

for (const { name, fn } of diagrams) {
  CURRENT.id = name;
  const d = fn();
  const file = join(HERE, `${name}.svg`);
  writeFileSync(file, svgDocument({ id: name, ...d }));
  console.log(`wrote ${file}`);
}
