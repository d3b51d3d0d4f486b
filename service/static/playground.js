// The playground: calls POST /encode, GET /knowledge/{id} and POST /ask on the server that served
// this page, with the API key from the key field. No framework, no build step, no third-party code.
"use strict";

(() => {
  // A theory from ProofWriter's owa_dev_natlang (AttNonegNatLang-OWA-235), which the shipped model
  // answers correctly: Bob is round (1 step), big (2 steps) and young (3 steps); Fred's youth is unknown.
  const EXAMPLE_FACTS = [
    "Bob is nice.",
    "Bob is kind.",
    "Bob is blue.",
    "Fred is green.",
    "Fred is blue.",
    "Harry is round.",
    "Harry is blue.",
    "If someone is kind and nice then they are round.",
    "If someone is green and kind and round then they are young.",
    "If someone is big and kind and round then they are red.",
    "If someone is big and blue then they are young.",
    "If someone is nice and round then they are big.",
    "If someone is rough and blue and round then they are nice.",
  ];
  const EXAMPLE_QUESTIONS = ["Bob is young.", "Fred is young."];

  const $ = (id) => document.getElementById(id);

  /** Non-empty trimmed lines of a textarea. */
  function lines(text) {
    return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  }

  function formatBytes(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
    return `${n} B`;
  }

  function formatMs(ms) {
    return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
  }

  function formatDuration(s) {
    if (s >= 3600) return `${(s / 3600).toFixed(1)} h`;
    if (s >= 60) return `${Math.round(s / 60)} min`;
    return `${Math.round(s)} s`;
  }

  /** Where a validation error points: ["body", "facts", 2] -> "facts[2]" (the line number follows). */
  function describeLoc(loc) {
    const parts = (loc || []).filter((p) => p !== "body");
    let out = "";
    for (const part of parts) out += typeof part === "number" ? `[${part}] (line ${part + 1})` : (out ? "." : "") + part;
    return out || "request";
  }

  /**
   * A readable message for a failed call: status, what the server said and, for 429 and 503, when to retry.
   * Exported for the browser test, which checks the statuses a healthy local server cannot produce on demand.
   */
  function describeError(status, body, retryAfter) {
    const detail = body && typeof body === "object" && "detail" in body ? body.detail : body;
    const lines = [];
    const retry = retryAfter ? ` Retry after ${retryAfter} s.` : "";
    switch (status) {
      case 401:
        lines.push("401 Unauthorized: this server needs an API key. Type it into the API key field.");
        break;
      case 404:
        lines.push("404 Not found: no knowledge set with this id for this API key (encode the facts first).");
        break;
      case 413:
        lines.push("413 Request too large: send fewer or shorter facts or questions.");
        break;
      case 422:
        lines.push("422 Invalid input:");
        if (Array.isArray(detail)) {
          for (const item of detail) lines.push(`• ${describeLoc(item.loc)}: ${item.msg}`);
          return lines.join("\n");
        }
        break;
      case 429:
        lines.push(`429 Too many requests: the server is rate limiting this client.${retry || " Retry later."}`);
        break;
      case 503:
        lines.push(`503 Service unavailable: the server cannot serve this request right now.${retry || " Retry later."}`);
        break;
      default:
        lines.push(status === 0 ? "Cannot reach the server." : `HTTP ${status}`);
    }
    if (detail !== undefined && detail !== null && detail !== "") {
      lines.push(`Server says: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    }
    return lines.join("\n");
  }

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super(describeError(status, body, retryAfter));
      this.status = status;
    }
  }

  async function call(method, path, payload) {
    const headers = { Accept: "application/json" };
    const key = $("api-key").value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
    } catch (err) {
      throw new ApiError(0, String(err), null);
    }
    const text = await response.text();
    let body = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      // not JSON (a proxy's error page, say): show the text as it came
    }
    if (!response.ok) throw new ApiError(response.status, body, response.headers.get("Retry-After"));
    return body;
  }

  function showError(id, err) {
    const box = $(id);
    box.textContent = err instanceof ApiError ? err.message : `Unexpected error: ${err}`;
    box.hidden = false;
  }

  function busy(button, statusId, text) {
    button.disabled = Boolean(text);
    $(statusId).textContent = text || "";
  }

  async function encode() {
    const button = $("encode");
    $("encode-error").hidden = true;
    busy(button, "encode-status", "encoding…");
    try {
      const out = await call("POST", "/encode", { facts: lines($("facts").value) });
      $("out-kid").textContent = out.knowledge_id;
      $("out-nfacts").textContent = String(out.n_facts);
      $("out-encode-ms").textContent = out.cached ? "0 ms (already encoded: no inner loop ran)" : formatMs(out.encode_ms);
      $("out-recall").textContent = `${(100 * out.recall).toFixed(0)}% of the facts reproduced by the adapted model`;
      $("out-delta-bytes").textContent = formatBytes(out.delta_bytes);
      $("out-cached").textContent = out.cached ? "yes: this set was encoded before" : "no: encoded now";
      $("encode-result").hidden = false;
      $("kid").value = out.knowledge_id;
    } catch (err) {
      $("encode-result").hidden = true;
      showError("encode-error", err);
    } finally {
      busy(button, "encode-status", "");
    }
  }

  function renderAnswer(answer) {
    const item = document.createElement("li");
    item.className = "answer";
    item.dataset.question = answer.question;
    item.dataset.answer = answer.answer;
    const head = document.createElement("div");
    head.className = "answer-head";
    const question = document.createElement("span");
    question.className = "question";
    question.textContent = answer.question;
    const verdict = document.createElement("strong");
    verdict.className = "verdict";
    verdict.textContent = answer.answer;
    head.append(question, verdict);
    item.append(head);
    if (answer.scores) {
      const bars = document.createElement("div");
      bars.className = "bars";
      for (const [label, p] of Object.entries(answer.scores)) {
        const row = document.createElement("div");
        row.className = label === answer.answer ? "bar-row top" : "bar-row";
        row.dataset.label = label;
        row.dataset.p = String(p);
        const name = document.createElement("span");
        name.className = "bar-label";
        name.textContent = label;
        const track = document.createElement("span");
        track.className = "bar-track";
        const fill = document.createElement("span");
        fill.className = "bar-fill";
        fill.style.width = `${(100 * p).toFixed(1)}%`;
        track.append(fill);
        const value = document.createElement("span");
        value.className = "bar-value";
        value.textContent = `${(100 * p).toFixed(1)}%`;
        row.append(name, track, value);
        bars.append(row);
      }
      item.append(bars);
    }
    return item;
  }

  async function ask() {
    const button = $("ask");
    const kid = $("kid").value.trim();
    $("ask-error").hidden = true;
    if (!kid) {
      $("ask-error").textContent = "No knowledge id yet: encode some facts first, or paste an id.";
      $("ask-error").hidden = false;
      return;
    }
    busy(button, "ask-status", "asking…");
    try {
      // /ask does not say whether the delta was cached, so look first: a delta missing now is
      // re-encoded from the stored facts by this ask.
      const info = await call("GET", `/knowledge/${encodeURIComponent(kid)}`);
      const out = await call("POST", "/ask", { knowledge_id: kid, questions: lines($("questions").value) });
      $("out-ask-ms").textContent = `ask ${formatMs(out.ask_ms)} for ${out.answers.length} question(s)`;
      $("out-delta").textContent = info.delta_cached
        ? `answered from the cached delta${info.ttl_s === null ? "" : ` (expires in ${formatDuration(info.ttl_s)})`}`
        : "the delta was not cached: this ask re-encoded it from the stored facts";
      $("out-delta").dataset.cached = String(info.delta_cached);
      const list = $("answers");
      list.replaceChildren(...out.answers.map(renderAnswer));
      $("ask-result").hidden = false;
    } catch (err) {
      $("ask-result").hidden = true;
      showError("ask-error", err);
    } finally {
      busy(button, "ask-status", "");
    }
  }

  async function showServer() {
    try {
      const ready = await call("GET", "/readyz");
      $("server").textContent = `model ${ready.model} · labels ${(ready.labels || []).join(" / ") || "generated"} · ${ready.store} store`;
    } catch (err) {
      $("server").textContent = err instanceof ApiError ? err.message.split("\n")[0] : String(err);
      $("server").classList.add("error-text");
    }
  }

  function loadExample() {
    $("facts").value = EXAMPLE_FACTS.join("\n");
    $("questions").value = EXAMPLE_QUESTIONS.join("\n");
  }

  window.reckoningPlayground = { describeError };

  document.addEventListener("DOMContentLoaded", () => {
    $("encode").addEventListener("click", encode);
    $("ask").addEventListener("click", ask);
    $("example").addEventListener("click", loadExample);
    showServer();
  });
})();
