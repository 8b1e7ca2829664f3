/**
 * `run --html` and `report --html`: one self-contained page of a process tree, in the
 * spirit of `cargo build --timings`. A header with the command and totals, a timeline (one
 * row per process, nested by lineage, drawn on a canvas that paints only the visible rows),
 * and a table that sorts and filters, one `<tr data-pid>` per process.
 *
 * Safe with hostile names: every string from a process is escaped into the markup or
 * carried as JSON (with `<` escaped) and shown by the page's script through `textContent`
 * only. The Content-Security-Policy allows nothing from outside the page and runs only the
 * page's own script (by nonce): no network request, no injected script.
 *
 * @module
 */

import {
  entryName,
  fileLine,
  flatten,
  netLine,
  type SubtreeEntry,
  type SubtreeTotals,
} from "./subtree.ts";
import { isoToUs } from "../time.ts";

/** What a page shows. */
export interface ReportDoc {
  /** The command, or what the page reports on (a log and its window). */
  title: string;
  /** The command's exit status (null: not a run, or unknown). */
  exitStatus: number | null;
  /** Totals over the processes shown. */
  totals: SubtreeTotals;
  /** A note shown under the header (what was left out), if any. */
  note?: string;
  /** The processes: one tree per root. */
  roots: SubtreeEntry[];
  /** The paths each process changed (`run --files`): the filter finds a process by them. */
  paths?: ReadonlyMap<SubtreeEntry, readonly string[]>;
}

/** How a process ended, as the page colours it. */
export type Outcome = "ok" | "nonzero" | "killed" | "unknown-name" | "unknown-end";

/** One process as the page's script sees it (a JSON array row). */
export interface PageRow {
  pid: number;
  depth: number;
  /** Index of the creator's row; -1 for a root. */
  parent: number;
  name: string;
  argv: readonly string[] | null;
  exe: string | null;
  script: string | null;
  user: string | null;
  cwd: string | null;
  /** µs from the earliest start. */
  start: number;
  /** µs from the earliest start; null: not seen. */
  end: number | null;
  exitCode: number | null;
  signal: string | null;
  outcome: Outcome;
  /** With `--files`: its changes in one line (`files: 2 create: /a /b`); null: none. */
  files: string | null;
  /** With `--net`: its connections in one line (`net: 1 connect: tcp 10.0.0.1:443`); null: none. */
  net: string | null;
  /** How many changes it made (0 without `--files`). */
  fileCount: number;
  /** How many connect, accept and bind calls it made (0 without `--net`). */
  netCount: number;
  /** The paths it changed, as the run's index kept them (`run --files`). */
  paths: readonly string[];
}

/** How an entry ended. */
export function outcomeOf(e: SubtreeEntry): Outcome {
  if (e.signal !== null) return "killed";
  // A non-zero exit is an answer, not always a failure (`dpkg --compare-versions` says "no"
  // with 1): shown with its code, in a colour of its own, never as red as a kill.
  if (e.exit_code !== null && e.exit_code !== 0) return "nonzero";
  if (e.comm === null && e.argv === null && e.exe === null) return "unknown-name";
  if (e.exit_code === 0) return "ok";
  return "unknown-end";
}

/** The rows of `roots`, depth first (lineage order), times relative to the earliest start. */
export function pageRows(
  roots: readonly SubtreeEntry[],
  paths?: ReadonlyMap<SubtreeEntry, readonly string[]>,
): PageRow[] {
  const flat = flatten(roots);
  let t0 = Infinity;
  for (const { entry } of flat) t0 = Math.min(t0, isoToUs(entry.start));
  return flat.map(({ entry: e, depth, parent }) => ({
    pid: e.pid,
    depth,
    parent,
    name: (e.parent_cycle ? "↻ " : "") + entryName(e),
    argv: e.argv,
    exe: e.exe,
    script: e.script ?? null,
    user: e.user,
    cwd: e.cwd ?? null,
    start: isoToUs(e.start) - t0,
    end: e.end === null ? null : isoToUs(e.end) - t0,
    exitCode: e.exit_code,
    signal: e.signal,
    outcome: outcomeOf(e),
    files: e.files ? fileLine(e.files) : null,
    net: e.net ? netLine(e.net) : null,
    fileCount: e.files ? Object.values(e.files.counts).reduce((a, n) => a + n, 0) : 0,
    netCount: e.net
      ? ["connect", "accept", "bind"].reduce((a, k) => a + (e.net!.counts[k] ?? 0), 0)
      : 0,
    paths: paths?.get(e) ?? [],
  }));
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text for HTML markup and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** JSON that is safe inside a `<script>` element: no `</script>`, no `<!--`. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** `12.3 ms`, `4.56 s`, or `–`. */
export function formatDuration(us: number | null): string {
  if (us === null) return "–";
  return us < 1e6 ? `${(us / 1e3).toFixed(1)} ms` : `${(us / 1e6).toFixed(2)} s`;
}

function outcomeText(r: PageRow): string {
  if (r.signal) return `killed by ${r.signal}`;
  if (r.exitCode !== null) return `exit ${r.exitCode}`;
  return "end unknown";
}

/** Rows per block of the table: blocks out of view are not laid out (`content-visibility`). */
export const ROWS_PER_BLOCK = 200;

function tableRow(r: PageRow, i: number): string {
  const dur = r.end === null ? null : r.end - r.start;
  return `<div class="row ${r.outcome}" data-pid="${r.pid}" data-i="${i}">` +
    `<span>${r.pid}</span><span class="cmd d${Math.min(r.depth, 40)}">${
      escapeHtml(r.name)
    }</span>` +
    `<span>${escapeHtml(r.exe ?? "")}</span><span>${escapeHtml(r.user ?? "")}</span>` +
    `<span data-v="${r.start}">${formatDuration(r.start)}</span>` +
    `<span data-v="${dur ?? -1}">${formatDuration(dur)}</span>` +
    `<span data-v="${r.fileCount}">${r.fileCount || ""}</span>` +
    `<span data-v="${r.netCount}">${r.netCount || ""}</span>` +
    `<span>${escapeHtml(outcomeText(r))}</span></div>`;
}

/** The table's rows, in blocks of {@linkcode ROWS_PER_BLOCK}. */
function tableBody(rows: PageRow[]): string {
  let out = "";
  for (let i = 0; i < rows.length; i += ROWS_PER_BLOCK) {
    out += `<div class="block">${
      rows.slice(i, i + ROWS_PER_BLOCK).map((r, j) => tableRow(r, i + j)).join("")
    }</div>`;
  }
  return out;
}

function header(doc: ReportDoc, rows: PageRow[]): string {
  const t = doc.totals;
  let wallUs = 0;
  for (const r of rows) wallUs = Math.max(wallUs, r.end ?? r.start);
  const status = doc.exitStatus === null ? "" : ` · exit status ${doc.exitStatus}`;
  return `<header><h1>${escapeHtml(doc.title)}</h1><p class="totals">` +
    `${t.processes} processes · ${t.failed} non-zero exit${
      t.failed === 1 ? "" : "s"
    } · ${t.killed} killed · ` +
    `${t.lost_events} lost events · wall ${formatDuration(wallUs)}${status}</p>` +
    (doc.note ? `<p class="note">${escapeHtml(doc.note)}</p>` : "") + `</header>`;
}

/** The whole page. `nonce`: a fresh random string for the Content-Security-Policy. */
export function renderHtml(doc: ReportDoc, nonce: string): string {
  const rows = pageRows(doc.roots, doc.paths);
  const csp = `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; ` +
    `img-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(doc.title)} — proctree</title>
<style nonce="${nonce}">${PAGE_CSS}</style></head>
<body>
${header(doc, rows)}
<section id="timeline"><h2>Timeline</h2>
<div class="legend"><span class="ok">ok</span><span class="nonzero">exit ≠ 0</span><span class="killed">killed</span><span class="unknown-name">name unknown</span><span class="unknown-end">end unknown</span></div>
<p class="hint">A name in [brackets] is the program without its arguments: the process ended before its argv could be read from /proc (<code>--argv audit</code> reads every argv).</p>
<div id="tl-scroll"><div id="tl-space"></div><canvas id="tl"></canvas></div>
<pre id="tip" hidden></pre></section>
<section id="processes"><h2>Processes</h2>
<p><input id="filter" type="search" placeholder="filter: pid, command, user, a path it changed…">
<button id="by-lineage">lineage</button><button id="by-slowest">slowest first</button><button id="by-failed">non-zero first</button></p>
<div class="row head"><span>pid</span><span>command</span><span>exe</span><span>user</span><span>start</span><span>duration</span><span>files</span><span>net</span><span>outcome</span></div>
<div id="rows">${tableBody(rows)}</div></section>
<script type="application/json" id="data">${scriptJson(rows)}</script>
<script nonce="${nonce}">${PAGE_SCRIPT}</script>
</body></html>
`;
}

const PAGE_CSS = `
body{font:13px/1.4 system-ui,sans-serif;margin:0 16px 32px;color:#222}
h1{font-size:18px;margin:12px 0 4px;font-family:ui-monospace,monospace;word-break:break-all}
h2{font-size:15px;margin:16px 0 6px}.totals{margin:0;color:#444}.note{color:#a15c00}
.legend span{margin-right:12px}.legend span::before{content:"";display:inline-block;width:10px;height:10px;margin-right:4px;background:var(--c)}
.ok{--c:#2e7d32}.nonzero{--c:#8d6e63}.killed{--c:#ef6c00}.unknown-name{--c:#9e9e9e}.unknown-end{--c:#1565c0}
#tl-scroll{position:relative;height:360px;overflow:auto;border:1px solid #ccc}
#tl{position:sticky;top:0;left:0;display:block}
#tl-space{position:absolute;top:0;left:0;width:1px}
#tip{position:fixed;margin:0;padding:6px 8px;background:#fffbe6;border:1px solid #c9b458;max-width:70ch;white-space:pre-wrap;word-break:break-all;pointer-events:none;font:12px ui-monospace,monospace}
.row{display:grid;grid-template-columns:7ch minmax(0,1fr) 22% 10ch 9ch 10ch 6ch 5ch 16ch;border-bottom:1px solid #eee}
.row span{padding:2px 6px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.row.head{background:#f3f3f3;position:sticky;top:0}.row.head span{cursor:pointer;font-weight:600}
.block{content-visibility:auto;contain-intrinsic-size:auto ${ROWS_PER_BLOCK * 21}px}
span.cmd{font-family:ui-monospace,monospace}
.row.nonzero span:last-child{color:#6d4c41}.hint{color:#555;margin:4px 0}.row.killed span:last-child{color:#ef6c00}.row.sel{background:#fff3c4}
${Array.from({ length: 41 }, (_, i) => `.row span.d${i}{padding-left:${6 + i * 12}px}`).join("")}
`;

/**
 * The page's own script. Process strings reach the page only through `textContent` and
 * canvas `fillText`, never as markup.
 */
const PAGE_SCRIPT = `
"use strict";
const rows = JSON.parse(document.getElementById("data").textContent);
const COLORS = {ok:"#2e7d32",nonzero:"#8d6e63",killed:"#ef6c00","unknown-name":"#9e9e9e","unknown-end":"#1565c0"};
const ROW = 16, LABEL = 300, AXIS = 18;
const scroll = document.getElementById("tl-scroll"), canvas = document.getElementById("tl");
const space = document.getElementById("tl-space"), tip = document.getElementById("tip");
let end = 1;
for (const r of rows) end = Math.max(end, r.end === null ? r.start : r.end);
space.style.height = (rows.length * ROW + AXIS) + "px";
// As tall as the rows need, up to the box's own height: a small run is not a tall empty box.
scroll.style.height = Math.min(360, rows.length * ROW + AXIS + 4) + "px";
const dur = (us) => us === null ? "–" : us < 1e6 ? (us / 1e3).toFixed(1) + " ms" : (us / 1e6).toFixed(2) + " s";
function chain(i) {
  const out = [];
  for (let j = i; j >= 0 && out.length < 64; j = rows[j].parent) out.push(rows[j].pid + " " + rows[j].name.slice(0, 60));
  return out.join("\\n  ← ");
}
function details(i) {
  const r = rows[i];
  const how = r.signal ? "killed by " + r.signal : r.exitCode !== null ? "exit " + r.exitCode : "end unknown";
  return "pid " + r.pid + "  " + how + "  " + dur(r.end === null ? null : r.end - r.start) +
    "\\nargv: " + (r.argv ? JSON.stringify(r.argv) : "not read (the process ended before /proc could be read)") + "\\nexe: " + (r.exe ?? "unknown") +
    (r.script ? "\\nscript: " + r.script : "") + "\\nuser: " + (r.user ?? "unknown") +
    (r.cwd ? "\\ncwd: " + r.cwd : "") + (r.files ? "\\n" + r.files : "") + (r.net ? "\\n" + r.net : "") + "\\nchain: " + chain(i);
}
let selected = -1;
function draw() {
  const w = scroll.clientWidth, h = scroll.clientHeight, dpr = window.devicePixelRatio || 1;
  canvas.width = w * dpr; canvas.height = h * dpr; canvas.style.width = w + "px"; canvas.style.height = h + "px";
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = "11px ui-monospace, monospace";
  const first = Math.floor(scroll.scrollTop / ROW), last = Math.min(rows.length, first + Math.ceil(h / ROW) + 1);
  const off = scroll.scrollTop - first * ROW, span = Math.max(1, w - LABEL - 8);
  gridLines(g, h, span);
  for (let i = first; i < last; i++) {
    const r = rows[i], y = AXIS + (i - first) * ROW - off;
    if (i === selected) { g.fillStyle = "#fff3c4"; g.fillRect(0, y, w, ROW); }
    g.fillStyle = "#333";
    g.fillText((" ".repeat(Math.min(r.depth, 30) * 2) + r.pid + " " + r.name).slice(0, 44), 4, y + 12);
    const x0 = LABEL + (r.start / end) * span, x1 = LABEL + ((r.end === null ? end : r.end) / end) * span;
    g.fillStyle = COLORS[r.outcome];
    g.fillRect(x0, y + 3, Math.max(1, x1 - x0), ROW - 6);
  }
  axisLabels(g, w, span);
}
/** Time since the first start along the top, at a round step (1, 2 or 5 × 10^k µs). */
function ticks() {
  const base = Math.pow(10, Math.floor(Math.log10(end / 8)));
  const step = base * ([1, 2, 5, 10].find((m) => end / (base * m) <= 8) ?? 10);
  const out = [];
  for (let t = 0; t <= end; t += step) out.push(t);
  return out;
}
function gridLines(g, h, span) {
  g.strokeStyle = "#e4e4e4";
  for (const t of ticks()) {
    const x = Math.round(LABEL + (t / end) * span) + 0.5;
    g.beginPath(); g.moveTo(x, AXIS - 4); g.lineTo(x, h); g.stroke();
  }
}
function axisLabels(g, w, span) {
  g.fillStyle = "#fff"; g.fillRect(0, 0, w, AXIS - 4);
  g.fillStyle = "#555";
  for (const t of ticks()) g.fillText(dur(t), LABEL + (t / end) * span + 2, 10);
}
function rowAt(ev) {
  const rect = canvas.getBoundingClientRect();
  const i = Math.floor((ev.clientY - rect.top - AXIS + scroll.scrollTop) / ROW);
  return i >= 0 && i < rows.length ? i : -1;
}
canvas.addEventListener("mousemove", (ev) => {
  const i = rowAt(ev);
  if (i < 0) { tip.hidden = true; return; }
  tip.textContent = details(i);
  tip.hidden = false;
  tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 420) + "px";
  tip.style.top = Math.min(ev.clientY + 12, window.innerHeight - 160) + "px";
});
canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
const table = document.getElementById("rows");
const trs = Array.from(table.querySelectorAll(".row"));
const BLOCK = ${ROWS_PER_BLOCK};
/** Puts the rows back in blocks, in the given order. */
function place(sorted) {
  const blocks = [];
  for (let i = 0; i < sorted.length; i += BLOCK) {
    const b = document.createElement("div");
    b.className = "block";
    b.append(...sorted.slice(i, i + BLOCK));
    blocks.push(b);
  }
  table.replaceChildren(...blocks);
}
function select(i) {
  if (selected >= 0) trs[selected].classList.remove("sel");
  selected = i;
  if (i >= 0) { trs[i].classList.add("sel"); trs[i].scrollIntoView({block: "nearest"}); }
  draw();
}
canvas.addEventListener("click", (ev) => select(rowAt(ev)));
table.addEventListener("click", (ev) => {
  const tr = ev.target.closest(".row");
  if (!tr) return;
  const i = Number(tr.dataset.i);
  select(i);
  scroll.scrollTop = i * ROW - scroll.clientHeight / 2;
});
function order(key) {
  const sorted = trs.slice();
  if (key === "slowest") sorted.sort((a, b) => Number(b.children[5].dataset.v) - Number(a.children[5].dataset.v));
  else if (key === "failed") {
    const rank = {killed: 0, nonzero: 1, "unknown-end": 2, "unknown-name": 3, ok: 4};
    sorted.sort((a, b) => rank[a.classList[1]] - rank[b.classList[1]]);
  }
  place(sorted);
}
document.getElementById("by-lineage").onclick = () => order("lineage");
document.getElementById("by-slowest").onclick = () => order("slowest");
document.getElementById("by-failed").onclick = () => order("failed");
document.querySelectorAll(".row.head span").forEach((th, col) => th.addEventListener("click", () => {
  const sorted = trs.slice();
  const num = col === 0 || (col >= 4 && col <= 7);
  const v = (tr) => num ? Number(tr.children[col].dataset.v ?? tr.children[col].textContent) : tr.children[col].textContent;
  sorted.sort((a, b) => num ? v(a) - v(b) : String(v(a)).localeCompare(String(v(b))));
  place(sorted);
}));
document.getElementById("filter").addEventListener("input", (ev) => {
  const q = ev.target.value.toLowerCase();
  // A process is also found by a path it changed: "who touched this file".
  const by = (tr) => rows[Number(tr.dataset.i)].paths.some((p) => p.toLowerCase().includes(q));
  for (const tr of trs) tr.hidden = q !== "" && !tr.textContent.toLowerCase().includes(q) && !by(tr);
});
scroll.addEventListener("scroll", draw);
window.addEventListener("resize", draw);
draw();
document.body.dataset.rendered = String(rows.length);
`;

/** A fresh nonce for a page's Content-Security-Policy. */
export function pageNonce(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
