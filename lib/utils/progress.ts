/**
 * A terminal progress bar for long work (training, downloads):
 *
 *   train ━━━━━━━━━━━━━━╺━━━━━━━━━━━━━━━  412/1000  41% │ loss 1.734 │ 1,310 tok/s │ ETA 1m52s
 *
 * On a terminal it redraws one line in place; elsewhere (a notebook, a CI log) it prints a plain line
 * every 10% of the way, so logs stay short.
 */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class ProgressBar {
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastPrintedTenth = -1;

  constructor(
    readonly total: number,
    readonly label = "",
    private readonly stream: ProgressStream = process.stderr,
    /** How counts are shown, e.g. `formatBytes` for downloads. */
    private readonly formatCount: (count: number) => string = String,
  ) {}

  /** Shows `current` of `total` with extra fields, e.g. { loss: "1.734", "tok/s": "1,310" }. */
  update(current: number, fields: Record<string, string> = {}): void {
    const now = Date.now();
    const fraction = this.total > 0 ? Math.min(1, current / this.total) : 1;
    const line = this.render(current, fraction, fields, now);
    if (this.stream.isTTY) {
      if (now - this.lastDraw < 100 && current < this.total) return; // at most 10 redraws a second
      this.lastDraw = now;
      this.stream.write(`\r${line}\x1b[K`);
    } else {
      const tenth = Math.floor(fraction * 10);
      if (tenth === this.lastPrintedTenth) return;
      this.lastPrintedTenth = tenth;
      this.stream.write(`${line}\n`);
    }
  }

  /** Ends the bar's line on a terminal. */
  finish(): void {
    if (this.stream.isTTY) this.stream.write("\n");
  }

  private render(current: number, fraction: number, fields: Record<string, string>, now: number): string {
    const width = 30;
    const filled = Math.round(fraction * width);
    const bar = "━".repeat(filled) + (filled < width ? `╺${"━".repeat(width - filled - 1)}` : "");
    const elapsed = (now - this.started) / 1000;
    const eta = current > 0 && current < this.total ? formatDuration((elapsed / current) * (this.total - current)) : "";
    const parts = [
      `${this.label ? `${this.label} ` : ""}${bar} ${this.formatCount(current)}/${this.formatCount(this.total)} ${Math.round(fraction * 100)}%`,
      ...Object.entries(fields).map(([name, value]) => `${name} ${value}`),
      eta ? `ETA ${eta}` : `${formatDuration(elapsed)}`,
    ];
    return parts.join(" │ ");
  }
}

/** 95 → "1m35s", 3725 → "1h02m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** 1536 → "1.5 KB", 548105171 → "548.1 MB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
