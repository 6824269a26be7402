/**
 * The "See inside" panel: a token of the last reply (the newest one while it is being written, when
 * "follow" is on), its next-token probabilities and one layer's attention, drawn with Plotly.
 *
 * Looking inside runs the model once more, and drawing takes Plotly tens of milliseconds: while a reply is
 * being written, both would slow the writing down if done for every token. So the panel never queues
 * tokens: it finishes the look it is drawing, pauses a moment (the writing goes on), then looks at the
 * newest token.
 */
import Plotly from "plotly.js-dist-min";
import type { GPT } from "../lib/models/gpt.ts";
import type { Tokenizer } from "../lib/tokenizers/tokenizer.ts";
import type { Figure } from "../lib/viz/figures.ts";
import { attentionFigure, type Inside, lookInside, probabilityFigure, tokenLabel } from "./inside.ts";

/** The tokens of a reply so far: what it was given, and what it wrote. */
export interface ReplyTokens {
  prompt: readonly number[];
  tokens: readonly number[];
}

/** What the panel shows: token number `step` of `reply`, written after `inside.context`. */
export interface Shown {
  reply: ReplyTokens;
  step: number;
  written: number | undefined; // undefined when the reply has no token (the model ended its turn at once)
  inside: Inside;
}

const PLOTLY_CONFIG = { responsive: true, displaylogo: false, displayModeBar: "hover" };
/** Pause between two looks while a reply is being written: about 4 updates a second. */
const FOLLOW_PAUSE_MS = 250;

export class InsidePanel {
  private model?: GPT;
  private tokenizer?: Tokenizer;
  private reply?: ReplyTokens;
  private shown?: Shown;
  private wanted?: number; // the step to look at next
  private looking = false;
  private writing = false; // a reply is being written (its tokens keep coming)

  constructor(
    private readonly elements: {
      step: HTMLInputElement;
      stepLabel: HTMLElement;
      layer: HTMLSelectElement;
      follow: HTMLInputElement;
      hint: HTMLElement;
      probabilities: HTMLElement;
      attention: HTMLElement;
    },
    private readonly onError: (error: unknown) => void,
  ) {
    elements.step.addEventListener("input", () => {
      elements.follow.checked = false; // the learner chose a token: stay on it
      this.look(Number(elements.step.value));
    });
    elements.layer.addEventListener("change", () => void this.draw());
    elements.follow.addEventListener("change", () => {
      if (elements.follow.checked && this.reply) this.look(this.lastStep());
    });
  }

  /** A new model: one layer choice per block; nothing shown until a reply. */
  setModel(model: GPT | undefined, tokenizer: Tokenizer | undefined): void {
    this.model = model;
    this.tokenizer = tokenizer;
    const layers = model?.config.numLayers ?? 0;
    const choices = Array.from(
      { length: layers },
      (_, layer) => new Option(`${layer}${layer === layers - 1 ? " (last)" : ""}`, String(layer)),
    );
    this.elements.layer.replaceChildren(...choices);
    this.elements.layer.value = String(Math.max(0, layers - 1));
    this.clear();
  }

  clear(): void {
    this.reply = undefined;
    this.writing = false;
    this.shown = undefined;
    this.wanted = undefined;
    this.elements.step.disabled = true;
    this.elements.stepLabel.textContent = "";
    this.elements.hint.hidden = false;
    Plotly.purge(this.elements.probabilities);
    Plotly.purge(this.elements.attention);
  }

  /**
   * The reply being written has a new token, or is `finished`: with "follow" on, look at its newest token;
   * with it off, at the end of a reply not looked at yet.
   */
  update(reply: ReplyTokens, finished = false): void {
    this.reply = reply;
    this.writing = !finished;
    const { step } = this.elements;
    step.max = String(this.lastStep());
    step.disabled = false;
    if (this.elements.follow.checked || (finished && this.shown?.reply !== reply)) this.look(this.lastStep());
  }

  /** What is shown and whether a newer look is still coming (for tests/web.test.ts). */
  current(): (Omit<Shown, "reply"> & { settled: boolean }) | undefined {
    if (!this.shown) return undefined;
    const { step, written, inside } = this.shown;
    return { step, written, inside, settled: !this.looking && this.wanted === undefined };
  }

  private lastStep(): number {
    return Math.max(0, (this.reply?.tokens.length ?? 0) - 1);
  }

  /** Looks at `step` as soon as the look in progress (if any) is drawn. */
  private look(step: number): void {
    this.wanted = step;
    if (!this.looking) void this.lookWhileWanted();
  }

  private async lookWhileWanted(): Promise<void> {
    this.looking = true;
    try {
      while (this.wanted !== undefined && this.reply && this.model) {
        const step = this.wanted;
        this.wanted = undefined;
        const { model, reply } = this;
        const inside = await lookInside(model, [...reply.prompt, ...reply.tokens.slice(0, step)]);
        if (model !== this.model) break; // another checkpoint was loaded meanwhile
        this.shown = { reply, step, written: reply.tokens[step], inside };
        await this.draw();
        if (this.writing) await new Promise((resolve) => setTimeout(resolve, FOLLOW_PAUSE_MS));
      }
    } catch (error) {
      this.onError(error);
    } finally {
      this.looking = false;
    }
  }

  private async draw(): Promise<void> {
    const { shown, tokenizer, reply } = this;
    if (!shown || !tokenizer || !reply) return;
    const { step, stepLabel, layer, hint } = this.elements;
    step.value = String(shown.step);
    stepLabel.textContent =
      shown.written === undefined
        ? "the model ended its reply at once"
        : `token ${shown.step + 1} of ${reply.tokens.length}: "${tokenLabel(tokenizer, shown.written)}"`;
    hint.hidden = true;
    await Promise.all([
      plot(this.elements.probabilities, probabilityFigure(shown.inside, tokenizer, shown.written)),
      plot(this.elements.attention, attentionFigure(shown.inside, tokenizer, Number(layer.value))),
    ]);
  }
}

function plot(element: HTMLElement, figure: Figure): Promise<unknown> {
  return Plotly.react(element, figure.data, figure.layout, PLOTLY_CONFIG);
}
