// The search page: plain JS over the JSON API (no build step, no framework).
"use strict";

const $ = (id) => document.getElementById(id);
// reference: {file} or {imageId, url, collection}; defaults: query kind -> the server's collection for it
const state = { collections: [], defaults: {}, reference: null };

// The key (API_KEYS, or READ_API_KEYS for a reader) stays in this browser's localStorage only.
const KEY_STORE = "apiKey";

function authHeaders() {
  const key = localStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) throw new Error("This server needs an API key: enter it at the top of the page.");
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    throw new Error(body?.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail))
                                 : `${response.status} ${response.statusText}`);
  }
  return body;
}

function setStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

const MODE_WORDS = { text: "text", image: "image", composed: "image + change" };

async function loadCollections(selected) {
  const { items, defaults } = await api("/collections");
  state.collections = items;
  state.defaults = defaults || {};
  const select = $("collection");
  select.replaceChildren(...items.map((c) => new Option(`${c.name} (${c.kind})`, c.name)));
  const servable = (name) => items.some((c) => c.name === name && c.servable);
  const fallback = [state.defaults.text, state.defaults.image, state.defaults.composed].find(servable)
    ?? items.find((c) => c.servable)?.name;
  select.value = selected && items.some((c) => c.name === selected) ? selected : fallback;
  $("collections-guide").textContent = collectionsGuide();
  await showCollectionInfo();
}

function answering(mode) {
  return state.collections.filter((c) => c.servable && c.answers.includes(mode)).map((c) => c.name);
}

function collectionsGuide() {
  // In words: which collections answer which queries (the page switches for you when you search).
  const lines = Object.entries(MODE_WORDS).map(([mode, words]) => {
    const names = answering(mode);
    return `${words}: ${names.length ? names.join(", ") : "none here"}`;
  });
  return `Queries by ${lines.join(" · ")}`;
}

async function showCollectionInfo() {
  const name = $("collection").value;
  if (!name) { $("collection-info").textContent = "No collections."; return; }
  const detail = await api(`/collections/${encodeURIComponent(name)}`);
  const answers = detail.servable ? detail.answers.map((m) => MODE_WORDS[m]).join(", ")
                                  : "nothing until reindexed (another model made it)";
  $("collection-info").textContent = `${detail.metadata_count} images · answers: ${answers}`;
}

function queryMode(text, reference) {
  if (text && reference) return "composed";
  return text ? "text" : "image";
}

async function collectionFor(mode) {
  // The chosen collection when it answers this kind of query; else the server's default for it.
  const chosen = $("collection").value;
  if (answering(mode).includes(chosen)) return { collection: chosen, note: "" };
  const names = answering(mode);
  const other = names.includes(state.defaults[mode]) ? state.defaults[mode] : names[0];
  if (!other) {
    throw new Error(`No collection here answers ${MODE_WORDS[mode]} queries.`);
  }
  $("collection").value = other;
  await showCollectionInfo();
  return { collection: other, note: `Searched ${other}: ${chosen} does not answer ${MODE_WORDS[mode]} queries.` };
}

function setReference(reference) {
  state.reference = reference;
  const preview = $("reference-preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  if (!reference) {
    preview.hidden = true;
    preview.removeAttribute("src");
  } else {
    preview.src = reference.file ? URL.createObjectURL(reference.file) : reference.url;
    preview.hidden = false;
  }
  $("reference-clear").hidden = !reference;
}

async function search(event) {
  event?.preventDefault();
  const text = $("text").value.trim();
  if (!text && !state.reference) { setStatus("Type a text, add an image, or both.", true); return; }
  setStatus("Searching…");
  try {
    const { collection, note } = await collectionFor(queryMode(text, state.reference));
    const form = new FormData();
    form.append("collection", collection);
    form.append("top_k", $("top-k").value);
    if (text) form.append("text", text);
    const reference = state.reference;
    if (reference?.file) form.append("image", reference.file);
    else if (reference) form.append("image_id", reference.imageId);  // any collection's image
    const result = await api("/search", { method: "POST", body: form });
    renderResults(result);
    setStatus(note);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function renderResults(result) {
  $("summary").textContent =
    `${result.results.length} results · ${MODE_WORDS[result.mode]} search in ${result.collection}` +
    (result.composer ? ` (${result.composer} composer)` : "") + ` · ${result.took_ms} ms`;
  const items = result.results.map((hit, rank) => {
    const li = document.createElement("li");
    li.dataset.imageId = hit.id;
    li.title = "Use as the reference image";
    const img = document.createElement("img");
    showImage(img, hit.url);
    img.alt = hit.caption || `image ${hit.id}`;
    img.loading = "lazy";
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = `#${rank + 1} · ${hit.score.toFixed(3)}`;
    const caption = document.createElement("div");
    caption.className = "caption";
    caption.textContent = hit.caption || `id ${hit.id}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete";
    remove.textContent = "Delete";
    remove.dataset.testid = "delete";
    remove.addEventListener("click", (event) => {
      event.stopPropagation();
      deleteImage(hit.id, li);
    });
    li.append(img, score, caption, remove);
    li.addEventListener("click", () => {
      setReference({ imageId: hit.id, url: hit.url, collection: result.collection });
      $("text").focus();
      setStatus("Reference set: type a change and search.");
    });
    return li;
  });
  $("results").replaceChildren(...items);
}

function showImage(img, url) {
  // With a key set, reads may need it (READ_API_KEYS): an <img src> cannot send headers, a fetch can.
  if (!localStorage.getItem(KEY_STORE)) { img.src = url; return; }
  fetch(url, { headers: authHeaders() })
    .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(response.statusText))))
    .then((blob) => { img.src = URL.createObjectURL(blob); })
    .catch(() => { img.alt = "image not readable"; });
}

async function deleteImage(imageId, item) {
  if (!window.confirm(`Delete image ${imageId} from the collection?`)) return;
  try {
    await api(`/images/${imageId}`, { method: "DELETE" });
    item.remove();
    await showCollectionInfo();
    setStatus(`Deleted image ${imageId}.`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function wireKey() {
  const input = $("api-key");
  input.value = localStorage.getItem(KEY_STORE) || "";
  input.addEventListener("change", () => {
    const key = input.value.trim();
    if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
    loadCollections($("collection").value).then(() => setStatus(key ? "Key saved in this browser." : "Key removed."))
      .catch((e) => setStatus(e.message, true));
  });
}

async function addImages(event) {
  event.preventDefault();
  const files = $("add-files").files;
  if (!files.length) { setStatus("Choose one or more images to add.", true); return; }
  const form = new FormData();
  for (const file of files) form.append("files", file);
  setStatus(`Adding ${files.length} image(s)…`);
  try {
    const { items } = await api(`/collections/${encodeURIComponent($("collection").value)}/images`,
                                { method: "POST", body: form });
    const fresh = items.filter((item) => !item.duplicate).length;
    $("add-files").value = "";
    await showCollectionInfo();
    setStatus(`Added ${fresh}, already there ${items.length - fresh}.`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function wireDropzone() {
  const zone = $("reference");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/"));
    if (file) setReference({ file });
  });
  $("reference-file").addEventListener("change", (e) => {
    if (e.target.files[0]) setReference({ file: e.target.files[0] });
  });
  $("reference-clear").addEventListener("click", () => setReference(null));
}

window.addEventListener("DOMContentLoaded", async () => {
  wireDropzone();
  wireKey();
  $("search-form").addEventListener("submit", search);
  $("add-form").addEventListener("submit", addImages);
  $("collection").addEventListener("change", () => showCollectionInfo().catch((e) => setStatus(e.message, true)));
  try {
    await loadCollections(new URLSearchParams(location.search).get("collection"));
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
  }
});
