// imgsynth studio: the page. Plain JavaScript, no build step, nothing from the network.
// Text from recipes and data sets is only ever set as textContent, never parsed as HTML.
"use strict";

const TOKEN = document.querySelector('meta[name="studio-token"]').content;
const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Studio-Token": TOKEN },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  return { status: response.status, data };
}

function toast(text, ms = 3500) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, ms);
}

function setView(...nodes) {
  $("#view").replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined && node !== false));
}

function rgb(color) { return color ? `rgb(${color[0]}, ${color[1]}, ${color[2]})` : "#ccc"; }

function chips(names, colors) {
  return names.map((name) => el("span", { class: "chip", style: `background:${rgb((colors || {})[name])}` }, name));
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// A record as indented JSON, lists of numbers on one line; long strings (RLE counts) cut
// for display only.
function shownRecord(value, indent = "") {
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== "object")) return `[${value.map(scalar).join(", ")}]`;
    return value.length ? `[\n${value.map((v) => inner + shownRecord(v, inner)).join(",\n")}\n${indent}]` : "[]";
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    return keys.length ? `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${shownRecord(value[k], inner)}`).join(",\n")}\n${indent}}` : "{}";
  }
  return scalar(value);
}

function scalar(value) {
  return JSON.stringify(typeof value === "string" && value.length > 160 ? `${value.slice(0, 160)}… (${value.length} chars)` : value);
}

const state = {
  app: null,
  labels: localStorage.getItem("studio-labels") !== "0",
  recipe: { text: null, start: 0, count: 12, part: null, last: null, chain: Promise.resolve() },
  sets: {},  // per data set: filters and paging
};

// ---------------------------------------------------------------- routing

window.addEventListener("hashchange", route);
window.addEventListener("beforeunload", (event) => {
  const R = state.recipe;
  if (R.text !== null && R.text !== R.saved) event.preventDefault();  // unsaved edits: ask
});
window.addEventListener("DOMContentLoaded", () => {
  $("#open-form").addEventListener("submit", openPath);
  $("#modal-close").addEventListener("click", closeModal);
  $("#modal").addEventListener("click", (event) => { if (event.target.id === "modal") closeModal(); });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeModal(); });
  route();
});

async function route() {
  state.app = await getJSON("/api/state");
  renderNav();
  const hash = location.hash || "#/";
  let match;
  if (hash === "#/recipe" && state.app.recipe) return showRecipe();
  if ((match = hash.match(/^#\/set\/(\d+)\/item\/(\d+)$/))) return showItem(+match[1], +match[2]);
  if ((match = hash.match(/^#\/set\/(\d+)$/))) return showSet(+match[1]);
  if ((match = hash.match(/^#\/report\/(\d+)$/))) return showReport(+match[1]);
  // the landing page: the one thing opened, else the list
  const items = state.app.items;
  const shown = items.filter((item) => item.kind !== "recipe");
  if (hash === "#/" && state.app.recipe && !shown.length) { location.replace("#/recipe"); return; }
  if (hash === "#/" && !state.app.recipe && shown.length && shown.length === items.length) {
    const sets = shown.filter((item) => item.kind !== "report");
    if (sets.length === 1) { location.replace(`#/set/${sets[0].id}`); return; }
    if (!sets.length && shown.length === 1) { location.replace(`#/report/${shown[0].id}`); return; }
  }
  showHome();
}

function renderNav() {
  const nav = $("#nav");
  nav.replaceChildren();
  const hash = location.hash || "#/";
  if (state.app.recipe) nav.append(el("a", { href: "#/recipe", class: hash === "#/recipe" ? "active" : null }, "Recipe"));
  nav.append(el("a", { href: "#/home", class: hash === "#/home" ? "active" : null }, "Data sets & reports"));
}

async function openPath(event) {
  event.preventDefault();
  const path = $("#open-path").value.trim();
  if (!path) return;
  const R = state.recipe;
  if (/\.ya?ml$/i.test(path) && R.text !== null && R.text !== R.saved
      && !confirm("The recipe has edits that are not saved. Open another recipe anyway?")) return;
  const { status, data } = await postJSON("/api/open", { path });
  if (status !== 200) { toast(data.error || "cannot open"); return; }
  $("#open-path").value = "";
  if (data.opened === "recipe") {
    state.recipe = { text: null, start: 0, count: 12, part: null, last: null, chain: Promise.resolve() };
    location.hash = "#/recipe";
    if (location.hash === "#/recipe") route();
  } else {
    location.hash = "#/home";
    route();
  }
}

function showHome() {
  const view = $("#view");
  const items = state.app.items;
  const list = el("ul", { class: "list" });
  if (state.app.recipe) list.append(el("li", {}, el("span", { class: "kind" }, "recipe"), el("a", { href: "#/recipe" }, state.app.recipe)));
  for (const item of items) {
    if (item.kind === "recipe") {
      list.append(el("li", {}, el("span", { class: "kind" }, "recipe"), el("a", { href: "#/recipe",
        onclick: (event) => { event.preventDefault(); $("#open-path").value = item.name; $("#open-form").requestSubmit(); } }, item.name)));
      continue;
    }
    const href = item.kind === "report" ? `#/report/${item.id}` : `#/set/${item.id}`;
    list.append(el("li", {}, el("span", { class: "kind" }, item.kind), el("a", { href }, item.name)));
  }
  view.replaceChildren(
    el("h2", {}, "Opened"),
    el("div", { class: "panel" },
      items.length || state.app.recipe ? list : el("p", { class: "muted" }, "No data set or report found in the opened folders."),
      el("p", { class: "muted" }, "Folders: ", state.app.roots.join(", ") || "none",
        ". Open another recipe or folder with the box at the top right.")));
}

// ---------------------------------------------------------------- recipe view

async function showRecipe() {
  const R = state.recipe;
  if (R.text === null) {
    const loaded = await getJSON("/api/recipe");
    R.text = R.saved = loaded.text;
  }
  const view = $("#view");
  view.replaceChildren(el("div", { class: "recipe" },
    el("section", { class: "editor" },
      el("div", { class: "tabs" },
        el("button", { id: "tab-form", class: "active", onclick: () => showTab("form") }, "Form"),
        el("button", { id: "tab-yaml", onclick: () => showTab("yaml") }, "YAML"),
        el("span", { class: "muted", id: "recipe-path", style: "margin-left:auto;align-self:center" }, state.app.recipe)),
      el("div", { id: "form-pane" }),
      el("textarea", { id: "yaml", spellcheck: "false", hidden: true, oninput: onYamlInput })),
    el("section", {},
      el("div", { class: "toolbar" },
        el("select", { id: "part", hidden: true, onchange: (event) => { R.part = event.target.value; R.start = 0; render(); } }),
        el("button", { id: "prev", title: "Previous indices", onclick: () => page(-1) }, "◀"),
        el("label", { title: "First index shown" }, "index ", el("input", { id: "start", type: "number", min: 0, value: R.start, onchange: (event) => { R.start = Math.max(0, +event.target.value || 0); render(); } })),
        el("span", { id: "range", class: "muted" }),
        el("button", { id: "next", title: "Next indices", onclick: () => page(1) }, "▶"),
        el("select", { id: "count", title: "Samples shown", onchange: (event) => { R.count = +event.target.value; render(); } },
          ...[4, 8, 12, 24, 48].map((n) => el("option", { value: n, selected: n === R.count }, `${n} samples`))),
        el("span", { class: "sep" }),
        el("button", { id: "seed", title: "Set the recipe's seed to a new random value", onclick: newSeed }, "New seed"),
        el("button", { id: "reload", title: "Forget what was built and read: changed files are seen by themselves; this is for models in caches and files overwritten in very large folders",
          onclick: () => render(null, true) }, "Reload"),
        el("label", {}, el("input", { id: "labels", type: "checkbox", checked: state.labels, onchange: toggleLabels }), " labels"),
        el("span", { class: "sep" }),
        el("button", { id: "copy-set", title: "The imgsynth run command with --set for each change", onclick: copySet }, "Copy as --set"),
        el("button", { id: "save", title: "Save the recipe over its file (asks first)", onclick: () => save(null) }, "Save"),
        el("button", { id: "save-as", title: "Save beside it under another name", onclick: saveAs }, "Save as…")),
      el("div", { id: "status" }),
      el("pre", { id: "command", class: "command", hidden: true }),
      el("div", { id: "errors", class: "errors", hidden: true }),
      el("div", { id: "warnings", class: "warnings", hidden: true }),
      el("div", { id: "grid", class: "grid" }))));
  $("#yaml").value = R.text;
  render();  // what was shown before comes back from the studio's cache
}

function showTab(name) {
  $("#tab-form").classList.toggle("active", name === "form");
  $("#tab-yaml").classList.toggle("active", name === "yaml");
  $("#form-pane").hidden = name !== "form";
  $("#yaml").hidden = name !== "yaml";
}

function onYamlInput(event) {
  state.recipe.text = event.target.value;
  clearTimeout(onYamlInput.timer);
  onYamlInput.timer = setTimeout(() => render(), 400);
}

function page(direction) {
  const R = state.recipe;
  const total = R.last && R.last.count ? R.last.count : Infinity;
  R.start = Math.max(0, Math.min(R.start + direction * R.count, Math.max(0, total - 1)));
  $("#start").value = R.start;
  render();
}

function newSeed() {
  render({ key: "seed", value: String(Math.floor(Math.random() * 2 ** 31)) });
}

// Renders run one after another: an edit is applied to the text the previous one returned.
function render(edit = null, reload = false) {
  const R = state.recipe;
  R.chain = R.chain.then(() => renderNow(edit, reload)).catch((error) => toast(String(error.message || error)));
  return R.chain;
}

async function renderNow(edit, reload = false) {
  const R = state.recipe;
  const sent = R.text;
  const t0 = performance.now();
  $("#status") && ($("#status").textContent = "rendering…");
  const body = { text: sent, part: R.part, start: R.start, count: R.count };
  if (edit) body.edit = edit;
  if (reload) body.reload = true;
  const { status, data } = await postJSON("/api/recipe/render", body);
  if (status !== 200) throw new Error(data.error || `render failed (${status})`);
  if (R.text === sent) R.text = data.text;  // a form edit changed the text
  else if (edit) { R.text = data.text; }
  R.last = data;
  if (!$("#grid")) return;
  const yaml = $("#yaml");
  if (document.activeElement !== yaml || yaml.value === sent) yaml.value = R.text;
  await applyAnswer(data, t0);
}

async function applyAnswer(data, t0) {
  const R = state.recipe;
  updateForm(data.form || []);
  showErrors(data);
  const warnings = $("#warnings");
  warnings.hidden = !(data.warnings && data.warnings.length);
  warnings.replaceChildren(...(data.warnings || []).map((w) => el("div", {}, "warning: " + w)));
  const partSelect = $("#part");
  if (data.parts && data.parts.length) {
    partSelect.hidden = false;
    if (partSelect.options.length !== data.parts.length) {
      partSelect.replaceChildren(...data.parts.map((name) => el("option", { value: name }, `part: ${name}`)));
    }
    partSelect.value = data.part;
    R.part = data.part;
  } else {
    partSelect.hidden = true;
  }
  const grid = $("#grid");
  if (data.error) { grid.classList.add("stale"); $("#status").textContent = "not rendered: the recipe has an error"; return; }
  grid.classList.remove("stale");
  const samples = data.samples || [];
  const first = samples.length ? samples[0].index : R.start;
  $("#range").textContent = samples.length ? `to ${samples[samples.length - 1].index} of ${data.count}` : `of ${data.count}`;
  $("#start").value = first;
  $("#prev").disabled = first <= 0;
  $("#next").disabled = !samples.length || samples[samples.length - 1].index >= data.count - 1;
  grid.dataset.generation = data.generation;
  grid.replaceChildren(...samples.map((sample) => sampleTile(sample, data.colors)));
  const loads = $$("img", grid).map((img) => img.complete ? Promise.resolve() : new Promise((done) => { img.onload = img.onerror = done; }));
  const timing = data.timing || {};
  const made = `${timing.made || 0} made, ${timing.staged_again || 0} re-staged, ${timing.files_reused || 0} from cache`;
  $("#status").textContent = `${plural(samples.length, "sample")} rendered in ${(timing.total_s || 0).toFixed(2)} s (${made})`;
  await Promise.all(loads);
  if (t0) {
    $("#status").textContent += `; shown ${((performance.now() - t0) / 1000).toFixed(2)} s after the change`;
  }
  grid.dataset.shown = data.generation;
}

function sampleTile(sample, colors) {
  const record = sample.record;
  const figure = el("figure", { class: `tile ${sample.status}`, "data-index": sample.index });
  if (sample.status !== "ok") {
    const why = sample.status === "skipped" ? `skipped: ${record.skipped} ${record.detail || ""}` : `failed: ${record.error}`;
    figure.append(el("div", { class: "frame" }, why), el("figcaption", {}, `index ${sample.index}`));
    return figure;
  }
  const instances = record.instances || [];
  figure.dataset.count = instances.length;
  const img = el("img", { alt: `sample ${record.id}`, src: state.labels ? sample.labels : sample.image,
    "data-image": sample.image, "data-labels": sample.labels });
  const names = [...new Set(instances.map((inst) => inst.class))].sort();
  figure.append(el("div", { class: "frame", style: frameShape(record.width, record.height) }, img), el("figcaption", {},
    el("div", { class: "count" }, `#${record.id}`, instances.length ? `  ${plural(instances.length, "object")}` : ""),
    el("div", {}, chips(names, colors)),
    record.label !== null && record.label !== undefined ? el("div", { class: "text" }, record.label) : null,
    record.text !== null && record.text !== undefined ? el("div", { class: "text" }, record.text) : null));
  figure.addEventListener("click", () => openSample(sample));
  return figure;
}

// A tile as wide as the column, as high as the image's shape asks (text lines stay low).
function frameShape(width, height) {
  if (!width || !height) return null;
  return `aspect-ratio: ${Math.min(Math.max(width / height, 0.75), 6).toFixed(3)}`;
}

function toggleLabels(event) {
  state.labels = event.target.checked;
  localStorage.setItem("studio-labels", state.labels ? "1" : "0");
  for (const img of $$("img[data-labels]")) img.src = state.labels ? img.dataset.labels : img.dataset.image;
}

function openSample(sample) {
  const big = sample.labels + "?fit=1024";
  const img = el("img", { src: state.labels ? big : sample.image, alt: `sample ${sample.record.id}` });
  openModal(el("div", { class: "detail" },
    el("div", { class: "image" }, img),
    el("div", {},
      el("h3", {}, `index ${sample.index} (file id ${sample.record.id})`),
      el("label", {}, el("input", { type: "checkbox", checked: state.labels,
        onchange: (event) => { img.src = event.target.checked ? big : sample.image; } }), " labels"),
      " · ", el("a", { href: sample.image, target: "_blank" }, "image as run writes it"),
      sample.mask ? [" · ", el("a", { href: sample.mask, target: "_blank" }, "mask")] : null,
      el("pre", { id: "record" }, shownRecord(sample.record)))));
}

// Fields are rebuilt only when the keys change, so focus and typing survive a re-render.
function updateForm(sections) {
  const pane = $("#form-pane");
  const signature = JSON.stringify(sections.map((s) => [s.key, keysOf(s.fields)]));
  if (pane.dataset.signature !== signature) {
    pane.dataset.signature = signature;
    pane.replaceChildren(...sections.map((section) => el("fieldset", { "data-key": section.key || "(top level)" },
      el("legend", {}, section.title), el("div", { class: "msg" }), ...section.fields.map(fieldRow))));
    return;
  }
  const all = sections.flatMap((s) => flatten(s.fields));
  for (const field of all) {
    const input = pane.querySelector(`[name="${CSS.escape(field.key)}"]`);
    if (!input || input === document.activeElement) continue;
    if (field.kind === "bool") input.checked = field.value === true; else input.value = field.value;
    input.closest(".field").classList.toggle("default", !field.present);
  }
}

function keysOf(fields) { return fields.map((f) => [f.key, f.kind, keysOf(f.children || [])]); }
function flatten(fields) { return fields.flatMap((f) => f.kind === "group" ? flatten(f.children) : [f, ...flatten(f.children || [])]); }

function fieldRow(field) {
  if (field.kind === "group") {
    return el("div", { class: "children", "data-key": field.key },
      el("div", { class: "group-title" }, field.name), ...field.children.map(fieldRow));
  }
  let input;
  if (field.kind === "choice") {
    input = el("select", {}, ...field.choices.map((choice) => el("option", { value: choice }, choice)));
    input.value = field.value;
  } else if (field.kind === "bool") {
    input = el("input", { type: "checkbox" });
    input.checked = field.value === true;
  } else {
    input = el("input", { type: "text", spellcheck: "false" });
    input.value = field.value;
  }
  input.name = field.key;
  input.addEventListener("change", () => {
    render({ key: field.key, value: field.kind === "bool" ? String(input.checked) : input.value });
  });
  const help = (field.description || "") + (field.present ? "" : " (default)");
  return el("div", { class: `field${field.present ? "" : " default"}`, "data-key": field.key },
    el("label", { title: `${field.key}: ${help}` }, field.name), input, el("div", { class: "msg" }),
    field.children ? el("div", { class: "children" }, ...field.children.map(fieldRow)) : null);
}

// Each message goes next to the most specific field or section it names.
function showErrors(data) {
  const box = $("#errors");
  box.hidden = !data.error;
  box.textContent = data.error || "";
  for (const row of $$(".invalid")) row.classList.remove("invalid");
  for (const msg of $$("#form-pane .msg")) msg.textContent = "";
  for (const item of data.errors || []) {
    let key = item.key;
    let target = null;
    while (key && !target) {
      target = $(`#form-pane [data-key="${CSS.escape(key)}"]`);
      if (!target) key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
    }
    if (!target) target = $("#form-pane fieldset");
    if (!target) continue;
    const msg = $(":scope > .msg", target) || target.querySelector(".msg");
    if (!msg) continue;
    const rest = item.key && key !== item.key ? `${item.key}: ` : "";
    msg.textContent += (msg.textContent ? "\n" : "") + rest + item.message;
    target.classList.add("invalid");
  }
}

async function copySet() {
  const sets = state.recipe.last && state.recipe.last.sets;
  const box = $("#command");
  if (!sets || !sets.command) {
    box.hidden = false;
    box.textContent = "These changes cannot be written as --set (a key was removed, or the recipe does not load): save the recipe instead.";
    return;
  }
  box.hidden = false;
  box.textContent = sets.command;
  try {
    await navigator.clipboard.writeText(sets.command);
    toast("copied: " + sets.command);
  } catch (error) {
    toast("select the command above and copy it");
  }
}

async function save(name) {
  const R = state.recipe;
  await R.chain;  // the text of the last edit
  let { status, data } = await postJSON("/api/recipe/save", { text: R.text, name });
  if (status === 200 && !data.saved && data.exists) {
    if (data.same && !name) { toast(`${data.path} already holds this recipe`); return; }
    const changed = data.changed_on_disk ? " It has changed on disk since the studio opened it." : "";
    if (!confirm(`${data.path} exists.${changed} Replace it?`)) { toast("not saved"); return; }
    ({ status, data } = await postJSON("/api/recipe/save", { text: R.text, name, overwrite: true }));
  }
  if (status !== 200 || !data.saved) { toast(data.error || "not saved", 8000); return; }
  state.app.recipe = data.path;
  R.saved = R.text;
  $("#recipe-path").textContent = data.path;
  const box = $("#command");
  box.hidden = false;
  box.textContent = `saved ${data.path}; run it with:\n${data.command}`;
  toast(`saved ${data.path}`);
  render();  // the --set command is now relative to the saved file
}

function saveAs() {
  const current = (state.app.recipe || "recipe.yaml").split("/").pop();
  const name = prompt("Save as (a file name beside the recipe):", current.replace(/(\.ya?ml)$/, "-tuned$1"));
  if (name) save(name.trim());
}

// ---------------------------------------------------------------- data set view

function setState(id) {
  if (!state.sets[id]) state.sets[id] = { start: 0, size: 48, classes: new Set(), min_count: "", max_count: "", min_size: "", max_size: "", order: [] };
  return state.sets[id];
}

async function showSet(id) {
  const S = setState(id);
  const info = await getJSON(`/api/sets/${id}`);
  const links = Object.entries(info.links || {}).map(([name, rel]) =>
    el("a", { href: `/files/${info.root}/${info.rel ? info.rel + "/" : ""}${rel}`, target: "_blank", style: "margin-right:10px" }, name));
  const number = (name, title) => el("input", { type: "number", min: 0, step: "any", value: S[name], title,
    onchange: (event) => { S[name] = event.target.value; S.start = 0; loadPage(id); } });
  setView(
    el("h2", {}, info.name, " ", el("span", { class: "muted" }, `(${info.kind})`)),
    links.length ? el("div", { style: "margin-bottom:8px" }, ...links) : null,
    info.failure ? el("div", { class: "errors" }, info.failure) : null,
    el("div", { class: "filters panel" },
      el("div", {}, el("div", { class: "muted" }, "classes"), el("div", { class: "classes", id: "class-filter" })),
      el("div", {}, el("div", { class: "muted" }, "labels per image"), number("min_count", "at least"), " – ", number("max_count", "at most")),
      el("div", {}, el("div", { class: "muted" }, "box size, % of the image"), number("min_size", "at least"), " – ", number("max_size", "at most")),
      el("label", {}, el("input", { id: "labels", type: "checkbox", checked: state.labels,
        onchange: (event) => { toggleLabels(event); loadPage(id); } }), " labels")),
    el("div", { class: "pager" },
      el("button", { id: "prev", onclick: () => { S.start = Math.max(0, S.start - S.size); loadPage(id); } }, "◀"),
      el("span", { id: "page-info", class: "muted" }),
      el("button", { id: "next", onclick: () => { S.start += S.size; loadPage(id); } }, "▶")),
    el("div", { id: "grid", class: "grid small" }),
    listing("errors.jsonl", info.errors, (row) => [row.index, row.error, (row.sources || []).join(", ")], ["index", "error", "files"]),
    listing("skipped.jsonl", info.skipped, (row) => [row.index, row.skipped, row.detail], ["index", "reason", "detail"]),
    info.warnings && info.warnings.length ? el("details", {}, el("summary", {}, `warnings while reading (${info.warnings.length})`),
      el("ul", {}, ...info.warnings.map((w) => el("li", {}, w)))) : null,
    info.issues && Object.keys(info.issues).length ? el("p", { class: "muted" }, "label fixes while reading: ",
      Object.entries(info.issues).map(([k, v]) => `${k} ${v}`).join(", ")) : null);
  loadPage(id);
}

function listing(name, listed, cells, heads) {
  if (!listed || !listed.total) return null;
  const more = listed.total > listed.rows.length ? ` (first ${listed.rows.length} shown)` : "";
  return el("details", { class: name.replace(".", "-") }, el("summary", {}, `${name}: ${listed.total}${more}`),
    el("table", { class: "rows" }, el("tr", {}, ...heads.map((h) => el("th", {}, h))),
      ...listed.rows.map((row) => el("tr", {}, ...cells(row).map((c) => el("td", {}, c === undefined || c === null ? "" : String(c)))))));
}

async function loadPage(id) {
  const S = setState(id);
  const query = new URLSearchParams({ start: S.start, size: S.size });
  for (const name of S.classes) query.append("class", name);
  for (const key of ["min_count", "max_count", "min_size", "max_size"]) if (S[key] !== "") query.set(key, S[key]);
  const token = (loadPage.token = (loadPage.token || 0) + 1);
  const page = await getJSON(`/api/sets/${id}/page?${query}`);
  if (token !== loadPage.token || !$("#class-filter")) return;  // a newer request, or another view
  const filter = $("#class-filter");
  if (filter.dataset.classes !== JSON.stringify(page.classes)) {
    filter.dataset.classes = JSON.stringify(page.classes);
    filter.replaceChildren(...page.classes.map((name) => el("label", {},
      el("input", { type: "checkbox", value: name, checked: S.classes.has(name),
        onchange: (event) => { if (event.target.checked) S.classes.add(name); else S.classes.delete(name); S.start = 0; loadPage(id); } }),
      " ", el("span", { class: "chip", style: `background:${rgb(page.colors[name])}` }, name))));
  }
  const filtered = S.classes.size || ["min_count", "max_count", "min_size", "max_size"].some((k) => S[k] !== "");
  const total = page.done ? `${page.total}` : `${page.total}+ (reading: ${page.indexed} records so far)`;
  const last = page.start + page.items.length;
  $("#page-info").textContent = page.items.length
    ? `${page.start + 1}–${last} of ${total}${filtered ? " matching" : ""}`
    : `none of ${total}${filtered ? " match" : ""}`;
  $("#prev").disabled = page.start <= 0;
  $("#next").disabled = page.done && last >= page.total;
  S.order = page.items.map((item) => item.n);
  const grid = $("#grid");
  const signature = JSON.stringify([S.order, state.labels, page.classes.length]);
  if (grid.dataset.signature !== signature) {
    grid.dataset.signature = signature;
    grid.replaceChildren(...page.items.map((item) => setTile(id, item, page)));
  }
  if (page.error) toast(page.error, 8000);
  if (!page.done) setTimeout(() => { if (token === loadPage.token) loadPage(id); }, 1000);
}

function setTile(id, item, page) {
  const src = `/api/sets/${id}/thumb/${item.n}?labels=${state.labels ? 1 : 0}&v=${page.classes.length}`;
  const figure = el("figure", { class: "tile", "data-n": item.n, "data-count": item.count },
    el("div", { class: "frame", style: frameShape(item.width, item.height) }, el("img", { src, alt: item.image || "", loading: "lazy" })),
    el("figcaption", {},
      el("div", { class: "count" }, item.id !== undefined && item.id !== null ? `#${item.id}` : `${item.n + 1}`,
        item.count ? `  ${plural(item.count, "object")}` : ""),
      el("div", {}, chips(item.classes, page.colors)),
      item.label !== null && item.label !== undefined ? el("div", { class: "text" }, chips([item.label], page.colors)) : null,
      item.text ? el("div", { class: "text" }, item.text) : null,
      item.error ? el("div", { class: "text", style: "color:var(--bad)" }, item.error) : null));
  figure.addEventListener("click", () => { location.hash = `#/set/${id}/item/${item.n}`; });
  return figure;
}

async function showItem(id, n) {
  const S = setState(id);
  const detail = await getJSON(`/api/sets/${id}/item/${n}`);
  const info = state.app.items[id];
  const big = (labels) => `/api/sets/${id}/thumb/${n}?labels=${labels ? 1 : 0}&fit=1024`;
  const img = el("img", { src: big(state.labels), alt: String(detail.record.image) });
  const at = S.order.indexOf(n);
  const prev = at > 0 ? S.order[at - 1] : n - 1;
  const next = at >= 0 && at < S.order.length - 1 ? S.order[at + 1] : n + 1;
  const links = Object.entries(detail.links).map(([name, url]) => el("a", { href: url, target: "_blank", style: "margin-right:10px" }, name));
  setView(
    el("div", { class: "pager" },
      el("a", { href: `#/set/${id}` }, `◀ ${info ? info.name : "data set"}`),
      el("span", { class: "sep" }),
      el("button", { id: "item-prev", disabled: prev < 0, onclick: () => { location.hash = `#/set/${id}/item/${prev}`; } }, "previous"),
      el("button", { id: "item-next", onclick: () => { location.hash = `#/set/${id}/item/${next}`; } }, "next"),
      el("label", {}, el("input", { type: "checkbox", checked: state.labels, onchange: (event) => {
        state.labels = event.target.checked; localStorage.setItem("studio-labels", state.labels ? "1" : "0"); img.src = big(state.labels); } }), " labels")),
    el("div", { class: "detail", id: "detail" },
      el("div", { class: "image" }, img),
      el("div", {},
        el("h3", {}, `record ${n + 1}`, detail.record.id !== undefined ? ` (id ${detail.record.id})` : ""),
        el("div", {}, ...links),
        el("pre", { id: "record" }, shownRecord(detail.record)))));
}

function showReport(id) {
  const item = state.app.items[id];
  setView(el("div", { class: "report" },
    el("h2", {}, `Evaluation report: ${item.name}`),
    el("iframe", { src: item.url, sandbox: "", title: "report.html" })));
}

// ---------------------------------------------------------------- modal

function openModal(content) {
  $("#modal-content").replaceChildren(content);
  $("#modal").hidden = false;
}

function closeModal() { $("#modal").hidden = true; $("#modal-content").replaceChildren(); }
