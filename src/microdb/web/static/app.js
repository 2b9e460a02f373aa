// MicroDB's web page: the few things that need script (writes go through the JSON API).
// No eval, no inline script, no HTML built from data: text goes in with textContent.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, url, body) {
    const options = {method: method, credentials: "same-origin", headers: {"X-CSRF-Token": csrf}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (err) {
      return {ok: false, status: 0, data: {error: "the server cannot be reached: " + err.message}};
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = {error: "the server answered " + response.status};
    }
    return {ok: response.ok, status: response.status, data: data};
  }

  function tablePath(table) {
    return encodeURIComponent(table);
  }

  function show(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  // The exact place of a JSON syntax error, as line and column.
  function jsonError(text, err) {
    let message = err.message;
    const at = /position (\d+)/.exec(message);
    if (at && !/line \d+/.test(message)) {
      const before = text.slice(0, Number(at[1]));
      const line = before.split("\n").length;
      const column = before.length - before.lastIndexOf("\n");
      message += " (line " + line + ", column " + column + ")";
    }
    return "Not valid JSON: " + message;
  }

  function parseDocument(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return {error: jsonError(text, err)};
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return {error: "A document must be a JSON object: {...}"};
    }
    return {value: value};
  }

  function setupEditor() {
    const form = document.getElementById("editor");
    if (!form) return;
    const area = form.querySelector("textarea");
    const error = document.getElementById("editor-error");
    const save = document.getElementById("save");
    const validate = function () {
      const parsed = parseDocument(area.value);
      show(error, parsed.error || "");
      save.disabled = Boolean(parsed.error);
      return parsed;
    };
    area.addEventListener("input", validate);
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const parsed = validate();
      if (parsed.error) return;
      const table = tablePath(form.dataset.table);
      const result = form.dataset.new
        ? await api("POST", "/api/tables/" + table + "/documents", {doc: parsed.value})
        : await api("PUT", "/api/tables/" + table + "/documents/" + form.dataset.id, {doc: parsed.value});
      if (!result.ok) {
        show(error, result.data.error);
        return;
      }
      window.location.assign("/t/" + table + "/doc/" + result.data.id);
    });

    const edit = document.getElementById("edit");
    if (edit) {
      edit.addEventListener("click", function () {
        form.hidden = false;
        document.getElementById("view").hidden = true;
        edit.hidden = true;
        area.focus();
      });
      document.getElementById("cancel-edit").addEventListener("click", function () {
        window.location.reload();
      });
    }
  }

  function setupDelete() {
    const button = document.getElementById("delete");
    if (!button) return;
    const form = document.getElementById("editor");
    const confirmBox = document.getElementById("confirm");
    button.addEventListener("click", function () {
      confirmBox.hidden = false;
      button.hidden = true;
    });
    document.getElementById("cancel-delete").addEventListener("click", function () {
      confirmBox.hidden = true;
      button.hidden = false;
    });
    document.getElementById("confirm-delete").addEventListener("click", async function () {
      const table = tablePath(form.dataset.table);
      const result = await api("DELETE", "/api/tables/" + table + "/documents/" + form.dataset.id);
      if (!result.ok) {
        show(document.getElementById("editor-error"), result.data.error);
        form.hidden = false;
        return;
      }
      window.location.assign("/t/" + table);
    });
  }

  function setupIndexes() {
    const error = document.getElementById("index-error");
    const form = document.getElementById("create-index");
    if (form) {
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        const body = {field: form.elements.field.value, unique: form.elements.unique.checked};
        const result = await api("POST", "/api/tables/" + tablePath(form.dataset.table) + "/indexes", body);
        if (!result.ok) {
          show(error, result.data.error);
          return;
        }
        window.location.reload();
      });
    }
    document.querySelectorAll("button.drop-index").forEach(function (button) {
      button.addEventListener("click", async function () {
        const url = "/api/tables/" + tablePath(button.dataset.table) + "/indexes/" + encodeURIComponent(button.dataset.field);
        const result = await api("DELETE", url);
        if (!result.ok) {
          show(error, result.data.error);
          return;
        }
        window.location.reload();
      });
    });
  }

  // The table's size is fetched after the page shows: counting a large SQL table reads
  // all of it, while the page itself reads only the documents it shows.
  async function loadCount() {
    const el = document.getElementById("count");
    if (!el) return;
    const result = await api("GET", "/api/tables/" + tablePath(el.dataset.table) + "/count");
    if (result.ok) {
      const n = result.data.count;
      el.textContent = n.toLocaleString("en-US") + (n === 1 ? " document" : " documents");
    }
  }

  // Live: the table page follows commits from every process through the change feed
  // (Server-Sent Events). The list of documents is fetched again and swapped in (parsed
  // as a document, never assigned as HTML); a query's results wait for the user to run
  // it again. Where the database keeps no feed, the Refresh button is all there is.
  function setupLive() {
    const count = document.getElementById("count");
    if (!count || !window.EventSource) return;
    const status = document.getElementById("live");
    const source = new EventSource("/api/tables/" + tablePath(count.dataset.table) + "/events");
    let pending = null;
    source.addEventListener("open", function () {
      status.hidden = false;
      status.textContent = "Live: following changes from every process.";
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) status.hidden = true;
    });
    source.addEventListener("change", function (event) {
      const data = JSON.parse(event.data);
      status.textContent = "Live: " + data.count + (data.count === 1 ? " change" : " changes") + " at " + new Date().toLocaleTimeString() + ".";
      if (document.getElementById("run")) {
        status.textContent += " Run the query again to see them.";
        return;
      }
      clearTimeout(pending);
      pending = setTimeout(refreshDocuments, 200);
    });
  }

  async function refreshDocuments() {
    let response;
    try {
      response = await fetch(window.location.href, {credentials: "same-origin"});
    } catch (err) {
      return;
    }
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    ["docs", "pager"].forEach(function (id) {
      const old = document.getElementById(id);
      const replacement = fresh.getElementById(id);
      if (old && replacement) old.replaceWith(document.importNode(replacement, true));
    });
    loadCount();
  }

  document.addEventListener("DOMContentLoaded", function () {
    loadCount();
    setupEditor();
    setupDelete();
    setupIndexes();
    setupLive();
  });
})();
