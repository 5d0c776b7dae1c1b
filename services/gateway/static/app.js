// flashvqa web page: pick a picture, ask, watch the answer stream (SSE from /v1/chat/completions).
const MAX_UPLOAD_SIDE = 1024; // the server normalises to ~512x512; bigger uploads only cost time
const DEMO_MODEL_ID = "glm4v-demo"; // the model that ships with the package (services/demo/glm4v-demo/)
const RECEIPT_SCHEMA_URL = "/static/receipt_schema.json"; // examples/receipt_schema.json, the example in docs/api.md
const $ = (id) => document.getElementById(id);

const state = { imageUrl: null, messages: [], conversation: 0, controller: null, receiptSchema: null };

// ---- picture -------------------------------------------------------------------------------------------

async function useFile(file) {
  if (!file) return;
  clearError();
  try {
    const { url, width, height, sentWidth, sentHeight } = await downscale(file);
    newConversation();
    state.imageUrl = url;
    $("preview").src = url;
    $("preview").alt = `Your picture: ${file.name || "pasted image"}`;
    $("preview").hidden = false;
    $("drop-hint").hidden = true;
    $("new-image").hidden = false;
    const resized = sentWidth !== width ? `, sent as ${sentWidth}×${sentHeight}` : "";
    $("image-info").textContent = `${width}×${height} px, ${formatBytes(file.size)}${resized}`;
    $("question").focus();
  } catch (error) {
    showError(`This file could not be read as a picture (${error.message}).`);
  }
}

function downscale(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onerror = () => reject(new Error("unreadable file"));
    reader.onload = () => {
      const original = reader.result;
      const img = new Image();
      img.onerror = () => resolve({ url: original, width: 0, height: 0, sentWidth: 0, sentHeight: 0 }); // the server judges
      img.onload = () => {
        const { naturalWidth: width, naturalHeight: height } = img;
        const scale = Math.min(1, MAX_UPLOAD_SIDE / Math.max(width, height));
        if (scale === 1) return resolve({ url: original, width, height, sentWidth: width, sentHeight: height });
        const canvas = document.createElement("canvas");
        canvas.width = Math.round(width * scale);
        canvas.height = Math.round(height * scale);
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        resolve({ url: canvas.toDataURL("image/jpeg", 0.9), width, height,
                  sentWidth: canvas.width, sentHeight: canvas.height });
      };
      img.src = original;
    };
    reader.readAsDataURL(file);
  });
}

function resetImage() {
  newConversation();
  state.imageUrl = null;
  $("preview").hidden = true;
  $("preview").removeAttribute("src");
  $("drop-hint").hidden = false;
  $("new-image").hidden = true;
  $("image-info").textContent = "";
  $("image-input").value = "";
}

// A new picture or another model: the answers so far are not the next question's history, and one still
// streaming stops.
function newConversation() {
  stop();
  state.messages = [];
  state.conversation += 1; // the stopped answer must not put its conversation back when it ends
  $("turns").replaceChildren();
  clearError();
}

// ---- asking ----------------------------------------------------------------------------------------------

async function ask(question) {
  question = question.trim();
  if (!question || state.controller) return;
  clearError();
  const content = state.messages.length === 0 && state.imageUrl
    ? [{ type: "image_url", image_url: { url: state.imageUrl } }, { type: "text", text: question }]
    : question;
  const history = [...state.messages, { role: "user", content }];
  const conversation = state.conversation;
  addTurn("user", question);
  const answer = addTurn("assistant", "");
  answer.text.classList.add("thinking");
  answer.meta.textContent = "thinking";
  $("question").value = "";
  setBusy(true);
  const started = performance.now();
  let firstTokenAt = null;
  let text = "";
  let model = null;
  state.controller = new AbortController();
  try {
    const responseFormat = await chosenResponseFormat();
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: requestHeaders(),
      body: JSON.stringify({
        model: $("model").value || undefined, // no list of models: the server's base answers
        messages: history,
        stream: true,
        max_tokens: Number($("max-tokens").value) || 256,
        temperature: chosenTemperature(),
        response_format: responseFormat,
        chat_template_kwargs: { enable_thinking: $("thinking").checked && !responseFormat },
      }),
      signal: state.controller.signal,
    });
    if (!response.ok) throw await apiError(response);
    for await (const event of serverSentEvents(response)) {
      if (event.error) throw new Error(event.error.message);
      model ??= event.model;
      const delta = event.choices?.[0]?.delta?.content;
      if (!delta) continue;
      if (firstTokenAt === null) {
        firstTokenAt = performance.now();
        answer.text.classList.remove("thinking");
      }
      text += delta;
      answer.text.textContent = text;
    }
    const incomplete = responseFormat && !showJson(answer.text, text);
    const by = $("model-picker").hidden || !model ? "" : `${model} · `; // who answered, as the server names it
    answer.meta.textContent = `${by}${timing(started, firstTokenAt)}${incomplete ? " · incomplete JSON" : ""}`;
  } catch (error) {
    if (error.name === "AbortError") {
      answer.meta.textContent = `stopped · ${timing(started, firstTokenAt)}`;
    } else {
      answer.meta.textContent = "";
      showError(error.message);
    }
  } finally {
    answer.text.classList.remove("thinking");
    if (text && conversation === state.conversation) {
      state.messages = [...history, { role: "assistant", content: text }];
    }
    state.controller = null;
    setBusy(false);
  }
}

// The picker lists the base (the server lists it first) and the LoRA adapters served beside it, and shows only
// when there are adapters. A list that cannot be had (refused, unreachable) leaves it empty: no model is named.
async function loadModels() {
  const select = $("model");
  const chosen = select.value;
  let models = [];
  try {
    const response = await fetch("/v1/models", { headers: requestHeaders() });
    if (response.ok) models = (await response.json()).data;
  } catch { /* no list: the base answers */ }
  select.replaceChildren(
    ...models.map(({ id, parent }) => new Option(parent ? `${id} (adapter of ${parent})` : `${id} (base model)`, id)),
  );
  if (models.some(({ id }) => id === chosen)) select.value = chosen;
  $("model-picker").hidden = models.length < 2;
  $("demo-note").hidden = !models.some(({ id }) => id === DEMO_MODEL_ID);
  if (chosen && select.value !== chosen) newConversation(); // the chosen model is no longer listed
}

// undefined (plain text), or the response_format the answer must follow.
async function chosenResponseFormat() {
  const choice = $("answer-format").value;
  if (choice === "json_object") return { type: "json_object" };
  if (choice !== "receipt") return undefined;
  if (!state.receiptSchema) {
    const response = await fetch(RECEIPT_SCHEMA_URL, { signal: state.controller.signal });
    if (!response.ok) throw new Error(`The receipt schema could not be loaded (${response.status}).`);
    state.receiptSchema = await response.json();
  }
  return { type: "json_schema", json_schema: state.receiptSchema };
}

// Pretty-prints the answer if it is complete JSON; says whether it was.
function showJson(element, text) {
  try {
    element.textContent = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return false; // cut off (token limit): shown as it came
  }
  element.classList.add("json");
  return true;
}

// Greedy unless asked otherwise: small models and their adapters answer best at 0, and the API's default of 1
// would sample. An empty or out-of-range entry falls back to 0 rather than a refusal.
function chosenTemperature() {
  const value = Number($("temperature").value);
  return Number.isFinite(value) && value >= 0 && value <= 2 ? value : 0;
}

// A format constrains the answer from its first token, where a thinking model would begin to think.
function allowThinking() {
  $("thinking").disabled = $("answer-format").value !== "text";
}

function stop() {
  if (state.controller) state.controller.abort();
}

async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder(); // { stream: true } below keeps multi-byte characters whole
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

async function apiError(response) {
  let message = `The server answered ${response.status}.`;
  try {
    message = (await response.json()).error.message || message;
  } catch { /* not JSON: keep the status */ }
  const retry = response.headers.get("Retry-After");
  const explain = {
    401: "This server needs an API key: enter it under Settings.",
    413: "That picture is too large for this server.",
    429: `Too many requests right now — please retry in ${retry || "a few"} s.`,
    503: `The server is busy — please retry in ${retry || "a few"} s.`,
  }[response.status];
  if (response.status === 401) $("settings").open = true;
  return new Error(explain ? `${explain} (${message})` : message);
}

function requestHeaders() {
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

// ---- page ------------------------------------------------------------------------------------------------

function addTurn(role, text) {
  const item = document.createElement("li");
  item.className = `turn ${role}`;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  const meta = document.createElement("div");
  meta.className = "meta";
  item.append(body, meta);
  item.setAttribute("aria-label", role === "user" ? "You asked" : "Answer");
  $("turns").append(item);
  return { text: body, meta };
}

function timing(started, firstTokenAt) {
  const total = performance.now() - started;
  const first = firstTokenAt === null ? "no text" : `first text in ${Math.round(firstTokenAt - started)} ms`;
  return `${first} · total ${(total / 1000).toFixed(2)} s`;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function formatBytes(bytes) {
  return bytes > 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

function wire() {
  $("image-input").addEventListener("change", (event) => useFile(event.target.files[0]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.type.startsWith("image/"));
    if (item) useFile(item.getAsFile());
  });
  $("new-image").addEventListener("click", resetImage);
  $("ask-form").addEventListener("submit", (event) => { event.preventDefault(); ask($("question").value); });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask($("question").value);
    }
  });
  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => ask(button.textContent));
  }
  $("stop").addEventListener("click", stop);
  $("answer-format").addEventListener("change", allowThinking);
  allowThinking(); // the browser may have restored the choice
  $("api-key").value = localStorage.getItem("flashvqa-api-key") || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("flashvqa-api-key", $("api-key").value.trim());
    loadModels(); // a key may be what the list needed
  });
  $("model").addEventListener("change", newConversation); // an adapter's answers are its own conversation
}

wire();
loadModels();
