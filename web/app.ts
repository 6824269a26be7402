/**
 * Chat with your own GPT, in the browser: the page's entry point (bundled by scripts/web.ts).
 *
 * Everything runs here, on lib's own code: the model (lib/models/gpt.ts), the tokenizer, the chat template,
 * generation with the KV cache and sampling. The server, if any, only hands out files.
 *
 *   1. start a backend (backend.ts): WebGPU, else WebAssembly, else plain JavaScript;
 *   2. load the checkpoint the server offers, or the one the learner picks (checkpoint.ts);
 *   3. chat (conversation.ts), streaming each reply token by token, and show what the model computed for
 *      a token of it (inside-panel.ts).
 */
import { textStream } from "../lib/generation/stream.ts";
import { countParameters } from "../lib/models/config.ts";
import { isPageBackend, PAGE_BACKENDS, type PageBackend, type PageBackendInfo, startBackend } from "./backend.ts";
import {
  type CheckpointFiles,
  fetchServedCheckpoint,
  loadCheckpointFiles,
  readPickedCheckpoint,
} from "./checkpoint.ts";
import { Conversation, type Reply, type ReplySettings } from "./conversation.ts";
import { InsidePanel } from "./inside-panel.ts";

const element = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const input = element<HTMLTextAreaElement>("input");
const messages = element("messages");
const errorBox = element("error");

type State = "starting" | "no checkpoint" | "loading" | "ready" | "writing" | "error";

/** Everything the page holds. */
const page: {
  state: State;
  backend?: PageBackendInfo;
  files?: CheckpointFiles; // kept to rebuild the model on another backend
  conversation?: Conversation;
  writing?: AbortController;
  lastReply?: Reply;
} = { state: "starting" };

const inside = new InsidePanel(
  {
    step: element<HTMLInputElement>("step"),
    stepLabel: element("step-label"),
    layer: element<HTMLSelectElement>("layer"),
    follow: element<HTMLInputElement>("follow"),
    hint: element("inside-hint"),
    probabilities: element("probabilities"),
    attention: element("attention"),
  },
  showError,
);

// ---------------------------------------------------------------------------------------------------------
// Messages to the learner
// ---------------------------------------------------------------------------------------------------------

function showError(error: unknown): void {
  errorBox.textContent = error instanceof Error ? error.message : String(error);
  errorBox.hidden = false;
}

function hideError(): void {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

function setState(state: State): void {
  page.state = state;
  const ready = state === "ready";
  input.disabled = !ready;
  element<HTMLButtonElement>("send").disabled = !ready;
  element<HTMLButtonElement>("reset").disabled = !ready;
  element<HTMLButtonElement>("stop").disabled = state !== "writing";
  for (const id of ["pick-folder", "pick-files", "backend-choice"])
    element<HTMLInputElement>(id).disabled = state === "writing" || state === "loading";
}

// Nothing fails silently: an error anywhere ends up in the error box, never as a blank page.
window.addEventListener("error", (event) => showError(event.error ?? event.message));
window.addEventListener("unhandledrejection", (event) => showError(event.reason));

// ---------------------------------------------------------------------------------------------------------
// Backend and checkpoint
// ---------------------------------------------------------------------------------------------------------

async function useBackend(name: PageBackend | undefined): Promise<void> {
  page.backend = await startBackend(name);
  element("backend").textContent = `backend: ${page.backend.description}`;
}

async function load(files: CheckpointFiles): Promise<void> {
  setState("loading");
  hideError();
  element("load-message").textContent = `Loading ${files.label}…`;
  forgetModel();
  try {
    const { model, tokenizer } = await loadCheckpointFiles(files);
    const conversation = new Conversation(model, tokenizer);
    page.files = files;
    page.conversation = conversation;
    inside.setModel(model, tokenizer);
    const { numLayers, numHeads, embeddingDim, contextLength } = model.config;
    const kind = conversation.mode === "chat" ? "chat model" : "base model (no chat tokens: it continues your text)";
    element("model").textContent =
      `${files.label}: ${kind}, ${numLayers} layers × ${numHeads} heads, ${embeddingDim} wide, context ${contextLength} tokens, ` +
      `${(countParameters(model.config) / 1e6).toFixed(2)} M parameters, ${tokenizer.kind} tokenizer (${tokenizer.vocabSize} tokens)`;
    element("load-message").textContent = "Load another checkpoint:";
    element("system-label").hidden = conversation.mode !== "chat";
    input.placeholder =
      conversation.mode === "chat"
        ? "Write a message (Enter sends, Shift+Enter starts a new line)"
        : "Write the start of a text for the model to continue (Enter sends)";
    element("send").textContent = conversation.mode === "chat" ? "Send" : "Continue";
    clearMessages(
      conversation.mode === "chat" ? "Say something to your model." : "Give your model the start of a text.",
    );
    setState("ready");
    input.focus();
  } catch (error) {
    page.files = undefined;
    showError(`Could not load ${files.label}. ${(error as Error).message}`);
    element("load-message").textContent = "Choose a checkpoint:";
    setState("error");
  }
}

function forgetModel(): void {
  page.conversation?.model.dispose();
  page.conversation = undefined;
  page.lastReply = undefined;
  inside.setModel(undefined, undefined);
  element("model").textContent = "";
  element("speed").textContent = "";
}

async function pick(fileInput: HTMLInputElement): Promise<void> {
  const picked = Array.from(fileInput.files ?? []);
  fileInput.value = ""; // picking the same folder again is a new pick
  if (picked.length === 0) return;
  hideError();
  setState("loading"); // at once: reading the files takes a moment, and the old state no longer holds
  try {
    await load(await readPickedCheckpoint(picked));
  } catch (error) {
    showError(error); // the files were not a checkpoint: a model loaded before stays
    setState(page.conversation ? "ready" : "error");
  }
}

// ---------------------------------------------------------------------------------------------------------
// Chatting
// ---------------------------------------------------------------------------------------------------------

function clearMessages(hint: string): void {
  const paragraph = document.createElement("p");
  paragraph.className = "hint";
  paragraph.textContent = hint;
  messages.replaceChildren(paragraph);
}

function addElement(tag: string, className: string, text = "", parent: HTMLElement = messages): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  parent.append(node);
  messages.scrollTop = messages.scrollHeight;
  return node;
}

function readSettings(): ReplySettings {
  const value = (id: string) => element<HTMLInputElement>(id).value.trim();
  const wholeNumber = (id: string, name: string, least: number): number => {
    const number = Number(value(id));
    if (value(id) === "" || !Number.isInteger(number) || number < least)
      throw new Error(`${name} must be a whole number ≥ ${least}.`);
    return number;
  };
  return {
    temperature: Number(value("temperature")),
    topP: Number(value("top-p")),
    topK: value("top-k") === "" ? undefined : wholeNumber("top-k", "top-k", 1),
    maxNewTokens: wholeNumber("max-new-tokens", "The longest reply", 1),
    seed: wholeNumber("seed", "The seed", 0),
    system: value("system") || undefined,
  };
}

async function send(): Promise<void> {
  const { conversation } = page;
  const text = input.value;
  if (!conversation || page.state !== "ready" || text.trim() === "") return;
  hideError();
  let settings: ReplySettings;
  try {
    settings = readSettings();
  } catch (error) {
    showError(error);
    return;
  }
  messages.querySelector(".hint")?.remove();
  let bubble: HTMLElement;
  let written: HTMLElement;
  if (conversation.mode === "chat") {
    addElement("div", "message user", text);
    bubble = written = addElement("div", "message assistant writing");
  } else {
    bubble = addElement("div", "message continuation writing");
    addElement("span", "given", text, bubble);
    written = addElement("span", "written", "", bubble);
  }
  input.value = "";
  page.writing = new AbortController();
  setState("writing");
  const follow = element<HTMLInputElement>("follow").checked;
  const live = { prompt: [] as number[], tokens: [] as number[] };
  const stream = textStream(conversation.tokenizer, (piece) => {
    written.textContent += piece;
    messages.scrollTop = messages.scrollHeight;
  });
  try {
    const reply = await conversation.reply(text, settings, {
      signal: page.writing.signal,
      onPrompt: (prompt) => (live.prompt = prompt),
      onToken: (token) => {
        stream(token);
        live.tokens.push(token);
        inside.update(live);
      },
    });
    page.lastReply = reply;
    inside.update(live, true); // live holds the same tokens as reply
    describeReply(reply, settings, follow);
  } catch (error) {
    // nothing was written (e.g. a character the tokenizer does not know): give the text back to edit
    if (live.tokens.length === 0) {
      bubble.remove();
      if (conversation.mode === "chat") messages.lastElementChild?.remove();
      input.value = text;
    } else {
      inside.update(live, true);
    }
    showError(error);
  } finally {
    bubble.classList.remove("writing");
    page.writing = undefined;
    setState("ready");
    input.focus();
  }
}

/** The line under a reply: how long, how fast, why it ended; and the speed in the header. */
function describeReply(reply: Reply, settings: ReplySettings, follow: boolean): void {
  const count = reply.tokens.length;
  const speed = reply.seconds > 0 ? count / reply.seconds : 0;
  const ending = {
    stop: page.conversation?.mode === "chat" ? "the model ended its turn" : "the model wrote its end-of-text token",
    length: `reached the longest reply (${settings.maxNewTokens} tokens)`,
    aborted: "stopped",
  }[reply.finishReason];
  const notes = [
    `${count} token${count === 1 ? "" : "s"} in ${reply.seconds.toFixed(2)} s, ${speed.toFixed(1)} tokens/s`,
    ending,
    reply.droppedMessages > 0
      ? `the ${reply.droppedMessages} oldest messages no longer fit the context and are forgotten`
      : "",
    reply.truncatedLastMessage ? "your message was longer than the model can read: only its end was used" : "",
  ];
  addElement("div", "meta", notes.filter(Boolean).join(" · "));
  element("speed").textContent =
    `last reply: ${speed.toFixed(1)} tokens/s${follow ? " (with See inside following)" : ""}`;
}

// ---------------------------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------------------------

element("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  void send();
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    void send();
  }
});
element("stop").addEventListener("click", () => page.writing?.abort());
element("reset").addEventListener("click", () => {
  page.conversation?.reset();
  page.lastReply = undefined;
  inside.clear();
  hideError();
  clearMessages("Conversation forgotten. Say something new.");
});
for (const id of ["temperature", "top-p"]) {
  const slider = element<HTMLInputElement>(id);
  slider.addEventListener("input", () => (element(`${id}-value`).textContent = slider.value));
}
for (const id of ["pick-folder", "pick-files"]) {
  const fileInput = element<HTMLInputElement>(id);
  fileInput.addEventListener("change", () => void pick(fileInput));
}

const requested = new URLSearchParams(location.search).get("backend");
const backendChoice = element<HTMLSelectElement>("backend-choice");
backendChoice.replaceChildren(
  new Option("fastest available", "auto"),
  ...PAGE_BACKENDS.map((name) => new Option(name, name)),
);
backendChoice.value = isPageBackend(requested) ? requested : "auto";
backendChoice.addEventListener("change", async () => {
  // The same checkpoint on another backend: the weights are copied anew onto it.
  const name = isPageBackend(backendChoice.value) ? backendChoice.value : undefined;
  const url = new URL(location.href);
  if (name) url.searchParams.set("backend", name);
  else url.searchParams.delete("backend");
  history.replaceState(null, "", url); // a reload keeps the choice
  hideError();
  forgetModel();
  try {
    await useBackend(name);
    if (page.files) await load(page.files);
  } catch (error) {
    showError(error);
    setState("error");
  }
});

// ---------------------------------------------------------------------------------------------------------
// For tests/web.test.ts: the page's state, without reading pixels
// ---------------------------------------------------------------------------------------------------------

(window as unknown as { __courseChat: unknown }).__courseChat = {
  status: () => ({
    state: page.state,
    backend: page.backend?.name,
    backendDescription: page.backend?.description,
    mode: page.conversation?.mode,
    source: page.files?.source,
    error: errorBox.hidden ? undefined : errorBox.textContent,
  }),
  lastReply: () => page.lastReply,
  shown: () => inside.current(),
};

// ---------------------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  setState("starting");
  try {
    await useBackend(isPageBackend(requested) ? requested : undefined);
  } catch (error) {
    element("backend").textContent = "no backend";
    showError(error);
    setState("error");
    return;
  }
  let served: CheckpointFiles | undefined;
  try {
    served = await fetchServedCheckpoint();
  } catch (error) {
    showError(error);
  }
  if (served) {
    await load(served);
  } else {
    element("load-message").textContent = "No checkpoint yet. Choose one you trained (e.g. checkpoints/chat):";
    setState(errorBox.hidden ? "no checkpoint" : "error");
  }
}

void start();
