/* caviar dashboard: the pages (studies, study, trial, panda session, workers).
 *
 * Each page reads its parameters from the data-* attributes of <main id="page"> (data-page, data-id,
 * data-control), fetches the JSON API, draws with Plot (plot.js) and follows /events (server-sent
 * events). No inline scripts or styles: the page's Content-Security-Policy forbids them.
 */
"use strict";

(function () {
  const main = document.getElementById("page");
  if (!main) return;
  const PAGE = main.dataset.page || "";
  const ID = main.dataset.id || "";
  const CONTROL = main.dataset.control === "on";
  const P = window.Plot;

  /* ---- small helpers ------------------------------------------------------------------------ */

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node, ...children) {
    node.textContent = "";
    for (const c of children.flat(2)) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = (v, d) => P.fmt(v, d);

  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      if (t) clearTimeout(t);
      t = setTimeout(() => { t = null; fn(...args); }, ms);
    };
  }

  /** Calls fn at most once per animation frame. */
  function perFrame(fn) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; fn(); });
    };
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const s = Math.max(0, seconds);
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
    return `${(s / 86400).toFixed(s < 864000 ? 1 : 0)} d`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
    if (seconds < 120) return `${seconds.toFixed(1)} s`;
    return age(seconds);
  }

  const link = {
    study: (id) => `/studies/${enc(id)}`,
    trial: (id) => `/trials/${enc(id)}`,
    panda: (id) => `/panda/${enc(id)}`,
    of: (rec) => (rec.kind === "panda" ? link.panda(rec.id) : link.study(rec.id)),
  };

  function stateBadge(state, testid) {
    return h("span", { class: `state st-${state || "unknown"}`, "data-testid": testid || null, text: state || "?" });
  }

  function setState(node, state) {
    if (!node) return;
    node.className = `state st-${state || "unknown"}`;
    node.textContent = state || "?";
  }

  function progressBar(done, total, testid) {
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const bar = h("progress", { max: 1, value: frac.toFixed(4), "data-testid": testid || null, title: `${done} of ${total}` });
    return h("span", { class: "progress" }, bar, h("span", { class: "progress-text", text: `${done}/${total}` }));
  }

  /** Objective direction: val_accuracy is maximised, losses minimised. */
  const maximize = (objective) => /accuracy/.test(objective || "");
  const otherMetric = (objective) => (objective === "val_accuracy" ? "val_loss" : "val_accuracy");

  function bestValue(rec) {
    const b = rec.best;
    if (b === null || b === undefined) return null;
    if (typeof b === "number") return b;
    if (typeof b === "object") {
      if (rec.objective && typeof b[rec.objective] === "number") return b[rec.objective];
      if (typeof b.value === "number") return b.value;
      if (typeof b.val_loss === "number") return b.val_loss;
    }
    return null;
  }

  function epochsOf(curve) {
    if (!curve) return [];
    if (Array.isArray(curve)) return curve;
    if (Array.isArray(curve.epochs)) return curve.epochs;
    if (Array.isArray(curve.history)) return curve.history;
    return [];
  }

  function studyOfTrial(trialId) {
    const m = /^(.*)-r\d+-t\d+$/.exec(trialId || "");
    return m ? m[1] : null;
  }

  /** Redraw the plots when the window's width changes (they are drawn at their container's size). */
  const resizers = [];
  let lastWidth = window.innerWidth;
  window.addEventListener("resize", debounce(() => {
    if (window.innerWidth === lastWidth) return;
    lastWidth = window.innerWidth;
    for (const fn of resizers) { try { fn(); } catch (e) { console.error(e); } }
  }, 200));

  /* ---- connection state: the "server lost" banner ------------------------------------------- */

  const Conn = {
    lost: false,
    onRecover: [],
    probe: null,
    setLost(lost) {
      const banner = $("banner");
      const liveEl = $("live");
      if (lost === this.lost) return;
      this.lost = lost;
      if (banner) {
        if (lost) {
          banner.textContent = "connection to the server lost — retrying";
          banner.className = "banner lost";
          banner.setAttribute("data-state", "lost");
          banner.hidden = false;
        } else {
          banner.hidden = true;
          banner.textContent = "";
          banner.setAttribute("data-state", "ok");
        }
      }
      if (liveEl && lost) { liveEl.textContent = "offline"; liveEl.className = "live off"; }
      if (lost) this.startProbe();
      else {
        this.stopProbe();
        for (const fn of this.onRecover) { try { fn(); } catch (e) { console.error(e); } }
      }
    },
    startProbe() {
      if (this.probe) return;
      this.probe = setInterval(async () => {
        try {
          const r = await fetch("/healthz", { cache: "no-store" });
          if (r.ok) this.setLost(false);
        } catch (e) { /* still down */ }
      }, 2500);
    },
    stopProbe() {
      if (this.probe) clearInterval(this.probe);
      this.probe = null;
    },
  };

  class HttpError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  async function getJSON(path) {
    let r;
    try {
      r = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
    } catch (e) {
      Conn.setLost(true);
      throw e;
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      if (r.status >= 502 && r.status <= 504) Conn.setLost(true);
      throw new HttpError(r.status, (data && (data.error || data.detail)) || `HTTP ${r.status}`, data);
    }
    return data;
  }

  function errorNote(container, err, what) {
    if (!(err instanceof HttpError) && !(err instanceof TypeError && /fetch/i.test(err.message))) console.error(err);
    if (!container) return;
    const msg = err instanceof HttpError ? `${what || "could not load"}: ${err.message}` : `${what || "could not load"}: the server is not answering (retrying)`;
    clear(container, h("p", { class: "error-note", "data-testid": "load-error", text: msg }));
  }

  /** A passing notice (the store could not be read once): shown in the banner for a few seconds. */
  let noticeTimer = null;
  function storeNotice(message) {
    const banner = $("banner");
    if (!banner || Conn.lost) return;
    banner.textContent = "the server could not read the store: " + message + " (it keeps trying)";
    banner.className = "banner notice";
    banner.setAttribute("data-state", "notice");
    banner.hidden = false;
    if (noticeTimer) clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { if (!Conn.lost) { banner.hidden = true; banner.setAttribute("data-state", "ok"); } }, 8000);
  }

  /** Server-sent events with a visible state; the browser resumes with Last-Event-ID itself. */
  function live(query, handlers) {
    const path = "/events" + (query ? "?" + query : "");
    let source = null;
    let reopen = null;
    let wasOpen = false;
    const liveEl = $("live");
    function open() {
      if (source) source.close();
      source = new EventSource(path);
      source.onopen = () => {
        if (liveEl) { liveEl.textContent = "live"; liveEl.className = "live on"; }
        const recovered = wasOpen || Conn.lost;
        wasOpen = true;
        Conn.setLost(false);
        if (recovered && handlers.reconnect) handlers.reconnect();
      };
      source.onerror = (ev) => {
        if (ev && typeof ev.data === "string") {
          // the server's own "error" event: it could not read the store this time; the stream goes on
          let msg = ev.data;
          try { msg = JSON.parse(ev.data).error || msg; } catch (e) { /* plain text */ }
          storeNotice(msg);
          return;
        }
        if (liveEl) { liveEl.textContent = "reconnecting"; liveEl.className = "live off"; }
        Conn.setLost(true);
        if (source.readyState === EventSource.CLOSED && !reopen) {
          // the browser gave up (e.g. an HTTP error): open a new one after a while
          reopen = setTimeout(() => { reopen = null; open(); }, 3000);
        }
      };
      for (const type of ["study", "trial", "epoch", "panda", "worker"]) {
        if (!handlers[type]) continue;
        source.addEventListener(type, (ev) => {
          let data = null;
          try { data = JSON.parse(ev.data); } catch (e) { data = ev.data; }
          try { handlers[type](data); } catch (e) { console.error(e); }
        });
      }
    }
    open();
    window.addEventListener("beforeunload", () => source && source.close());
    return { close: () => source && source.close() };
  }

  /* ---- control: the token and POST requests -------------------------------------------------- */

  const TOKEN_KEY = "caviar-dashboard-token";
  const token = {
    get: () => { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } },
    set: (v) => { try { if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ } },
  };

  function initToken() {
    const form = $("token-form");
    if (!form) return;
    const input = $("token-input");
    const state = $("token-state");
    const show = () => {
      const has = !!token.get();
      state.textContent = has ? "set" : "not set";
      state.className = has ? "token-set" : "token-unset";
      if (!has) $("token-box").open = true;
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      token.set(input.value.trim());
      input.value = "";
      show();
      if (token.get()) $("token-box").open = false;
    });
    $("token-clear").addEventListener("click", () => { token.set(""); show(); });
    show();
  }

  async function post(path, body) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const t = token.get();
    if (t) headers.Authorization = "Bearer " + t;
    let r;
    try {
      r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}), cache: "no-store" });
    } catch (e) {
      Conn.setLost(true);
      return { ok: false, status: 0, error: "the server is not answering" };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.ok) return { ok: true, status: r.status, data };
    let error = (data && (data.error || data.detail)) || `HTTP ${r.status}`;
    if (r.status === 401 || r.status === 403) {
      error = (t ? "the token was refused" : "no token: paste it under “Control token”") + (data && data.error ? ` (${data.error})` : "");
    }
    return { ok: false, status: r.status, error, data };
  }

  function formMsg(node, ok, message) {
    if (!node) return;
    node.className = "form-msg " + (ok ? "ok" : "error");
    node.setAttribute("data-result", ok ? "ok" : "error");
    node.textContent = message;
  }

  /** "k=v" pairs, one a line (commas and spaces also separate pairs). */
  function parsePairs(textValue) {
    const values = {};
    const bad = [];
    for (const part of (textValue || "").split(/[\n,;]+|\s+(?=[^\s=]+=)/)) {
      const s = part.trim();
      if (!s) continue;
      const i = s.indexOf("=");
      if (i <= 0) { bad.push(s); continue; }
      values[s.slice(0, i).trim()] = s.slice(i + 1).trim();
    }
    return { values, bad };
  }

  function intOrNull(input) {
    const v = input && input.value.trim();
    if (!v) return null;
    const n = Number(v);
    return Number.isInteger(n) ? n : NaN;
  }

  /* ---- copy buttons ----------------------------------------------------------------------------- */

  function initCopy() {
    document.addEventListener("click", async (ev) => {
      const btn = ev.target.closest && ev.target.closest("button[data-copy]");
      if (!btn) return;
      const code = $(btn.dataset.copy);
      if (!code) return;
      const textValue = code.textContent;
      let done = false;
      try {
        if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(textValue); done = true; }
      } catch (e) { done = false; }
      if (!done) {
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { done = document.execCommand("copy"); } catch (e) { done = false; }
      }
      btn.textContent = done ? "copied" : "selected: press Ctrl-C";
      setTimeout(() => { btn.textContent = "copy"; }, 1800);
    });
  }

  /* ---- table sorting helper ------------------------------------------------------------------- */

  function markSorted(thead, key, order) {
    for (const th of thead.querySelectorAll("th[data-sort]")) {
      th.classList.toggle("sorted", th.dataset.sort === key);
      th.setAttribute("aria-sort", th.dataset.sort === key ? (order === "desc" ? "descending" : "ascending") : "none");
      th.dataset.order = th.dataset.sort === key ? order : "";
    }
  }

  /* =============================================================================================== */
  /* studies                                                                                         */
  /* =============================================================================================== */

  function studiesPage() {
    const body = $("studies-body");
    const thead = document.querySelector("#studies-table thead");
    const st = { rows: [], sort: "age", order: "asc", loaded: false };
    const saved = (() => { try { return JSON.parse(sessionStorage.getItem("caviar-studies-view") || "{}"); } catch (e) { return {}; } })();
    if (saved.sort) { st.sort = saved.sort; st.order = saved.order || "asc"; }
    if (saved.q) $("filter").value = saved.q;
    if (saved.kind) $("filter-kind").value = saved.kind;
    if (saved.state) $("filter-state").value = saved.state;

    const progressOf = (r) => {
      const p = r.progress || {};
      const total = p.total || 0;
      return total > 0 ? (p.done || 0) / total : 0;
    };
    const keyOf = {
      name: (r) => (r.name || "") + " " + r.id,
      kind: (r) => r.kind || "",
      state: (r) => r.state || "",
      strategy: (r) => r.strategy || "",
      progress: progressOf,
      rounds: (r) => (Array.isArray(r.rounds) ? r.rounds.length : r.rounds || 0),
      trials: (r) => r.trials || 0,
      best: (r) => { const v = r.kind === "panda" ? (r.panda ? r.panda.val_loss : null) : bestValue(r); return v === null || v === undefined ? Infinity : v; },
      age: (r) => (r.age_seconds === undefined || r.age_seconds === null ? Infinity : r.age_seconds),
    };

    function render() {
      const q = $("filter").value.trim().toLowerCase();
      const kind = $("filter-kind").value;
      const state = $("filter-state").value;
      try { sessionStorage.setItem("caviar-studies-view", JSON.stringify({ sort: st.sort, order: st.order, q, kind, state })); } catch (e) { /* ignore */ }
      let rows = st.rows.filter((r) => {
        if (kind && r.kind !== kind) return false;
        if (state && r.state !== state) return false;
        if (!q) return true;
        const hay = [r.id, r.name, r.state, r.strategy, r.objective, r.kind, r.dataset].join(" ").toLowerCase();
        return q.split(/\s+/).every((w) => hay.includes(w));
      });
      const key = keyOf[st.sort] || keyOf.age;
      rows = rows.slice().sort((a, b) => {
        const ka = key(a);
        const kb = key(b);
        const c = typeof ka === "number" && typeof kb === "number" ? ka - kb : String(ka).localeCompare(String(kb));
        return st.order === "desc" ? -c : c;
      });
      markSorted(thead, st.sort, st.order);
      $("studies-count").textContent = `${rows.length} of ${st.rows.length}`;
      if (!rows.length) {
        clear(body, h("tr", { class: "placeholder" }, h("td", { colspan: 9, text: st.rows.length ? "nothing matches the filter" : "no studies yet: caviar run STUDY.toml, or caviar panda start" })));
        return;
      }
      clear(body, rows.map((r) => {
        const p = r.progress || {};
        const best = r.kind === "panda" ? (r.panda ? r.panda.val_loss : null) : bestValue(r);
        const nRounds = Array.isArray(r.rounds) ? r.rounds.length : r.rounds;
        return h("tr", { "data-testid": "study-row", "data-id": r.id, "data-kind": r.kind, "data-state": r.state },
          h("td", null, h("a", { href: link.of(r), "data-testid": "study-link", text: r.name && r.name !== r.id ? r.name : r.id }),
            r.name && r.name !== r.id ? h("div", { class: "sub", text: r.id }) : null),
          h("td", null, h("span", { class: `kind kind-${r.kind}`, text: r.kind === "panda" ? "panda" : "sweep" })),
          h("td", null, stateBadge(r.state)),
          h("td", { text: r.kind === "panda" ? "–" : r.strategy || "–" }),
          h("td", null, progressBar(p.done || 0, p.total || 0)),
          h("td", { class: "num", text: r.kind === "panda" ? "–" : (nRounds ?? "–") }),
          h("td", { class: "num", text: r.kind === "panda" ? "–" : (r.trials ?? "–") }),
          h("td", { class: "num", "data-col": "best", "data-value": best ?? "" }, best === null || best === undefined ? "–" : fmt(best),
            h("span", { class: "sub", text: r.kind === "panda" ? " val_loss now" : r.objective ? " " + r.objective : "" })),
          h("td", { class: "num", title: r.created_at || "", text: age(r.age_seconds) }));
      }));
    }

    async function load() {
      try {
        const data = await getJSON("/api/studies");
        st.rows = (data && (data.studies || data)) || [];
        st.loaded = true;
        render();
      } catch (e) {
        if (!st.loaded) errorNote(body, e, "could not list the studies");
      }
    }

    for (const th of thead.querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        const k = th.dataset.sort;
        if (st.sort === k) st.order = st.order === "asc" ? "desc" : "asc";
        else { st.sort = k; st.order = k === "progress" || k === "trials" || k === "rounds" ? "desc" : "asc"; }
        render();
      });
    }
    $("filter").addEventListener("input", render);
    $("filter-kind").addEventListener("change", render);
    $("filter-state").addEventListener("change", render);
    const later = debounce(load, 400);
    live("", { study: later, trial: later, panda: later, reconnect: load });
    Conn.onRecover.push(load);
    setInterval(() => { if (!Conn.lost) load(); }, 30000); // ages, and a safety net for missed events
    load();
  }

  /* =============================================================================================== */
  /* study                                                                                           */
  /* =============================================================================================== */

  function formatRegion(region, space) {
    const kinds = {};
    for (const d of space || []) kinds[d.name] = d.kind;
    return Object.entries(region || {}).map(([k, v]) => {
      if (kinds[k] !== "choice" && Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number")) {
        return `${k} [${fmt(v[0])}, ${fmt(v[1])}]`;
      }
      return `${k} {${Array.isArray(v) ? v.join(", ") : v}}`;
    }).join("  ");
  }

  /** The searched dimensions: from "space" when the API has it, else guessed from round 0's region. */
  function dimsOf(rec, points) {
    if (Array.isArray(rec.space) && rec.space.length) {
      return rec.space.map((d) => Object.assign({}, d, { kind: d.kind === "int" && d.log ? "int_log" : d.kind }));
    }
    const r0 = (rec.rounds || [])[0];
    const region = (r0 && r0.region) || {};
    return Object.entries(region).map(([name, v]) => {
      const numeric = Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number");
      if (!numeric) return { name, kind: "choice", choices: v };
      const ints = (points || []).every((p) => Number.isInteger(p.params && p.params[name]));
      const log = v[0] > 0 && v[1] / v[0] >= 20;
      return { name, kind: ints ? (log ? "int_log" : "int") : (log ? "log" : "float"), low: v[0], high: v[1] };
    });
  }

  function studyPage() {
    const st = {
      rec: null, points: [], dims: [], objective: "val_loss",
      lb: { offset: 0, limit: 50, sort: "objective", order: null, status: "", total: 0, rows: [] },
      running: new Map(), // trial -> {status, epochs: []}
      top: [],
    };
    const saved = (() => { try { return JSON.parse(sessionStorage.getItem("caviar-study-view") || "{}"); } catch (e) { return {}; } })();
    if (saved.limit) { st.lb.limit = saved.limit; $("lb-size").value = String(saved.limit); }
    if (saved.metric) $("curve-metric").value = saved.metric;
    if (saved.logy !== undefined) $("logy").checked = !!saved.logy;
    const remember = () => {
      try { sessionStorage.setItem("caviar-study-view", JSON.stringify({ limit: st.lb.limit, metric: $("curve-metric").value, logy: $("logy").checked })); } catch (e) { /* ignore */ }
    };

    const ACTIVE = new Set(["queued", "running", "paused", "pending", "created"]);

    /* header */
    function renderHead() {
      const r = st.rec;
      document.title = `${r.name || r.id} · caviar dashboard`;
      $("study-name").textContent = r.name && r.name !== r.id ? `${r.name} · ${r.id}` : r.id;
      setState($("study-state"), r.state);
      const meta = [
        ["strategy", r.strategy], ["objective", r.objective + (maximize(r.objective) ? " (higher is better)" : " (lower is better)")],
        ["dataset", r.dataset], ["seed", r.seed], ["rounds", (r.rounds || []).length], ["trials", r.trials],
        ["created", r.created_at], ["finished", r.finished_at],
      ].filter(([, v]) => v !== null && v !== undefined && v !== "");
      clear($("study-meta"), meta.map(([k, v]) => h("span", { class: "meta-item" }, h("span", { class: "meta-key", text: k }), " ", String(v))));
      const counts = r.counts || {};
      clear($("study-counts"), Object.entries(counts).filter(([, n]) => n).map(([s, n]) =>
        h("span", { class: `chip st-${s}`, "data-testid": `count-${s}`, "data-count": n }, `${s} `, h("b", { text: n }))));
      if (r.error) $("study-counts").appendChild(h("span", { class: "chip st-failed", text: "error: " + r.error }));
      const done = Object.entries(counts).filter(([s]) => !ACTIVE.has(s)).reduce((a, [, n]) => a + n, 0);
      const total = (r.progress && r.progress.total) || r.trials || 0;
      clear($("study-progress"), progressBar(r.progress ? r.progress.done : done, total, "study-progress-bar"));
      const b = r.best;
      if (b && typeof b === "object") {
        clear($("study-best"), "best ", h("a", { href: link.trial(b.id), "data-testid": "best-link", text: b.id }),
          `  ${r.objective} `, h("b", { text: fmt(b[r.objective], 5) }),
          `  ${otherMetric(r.objective)} ${fmt(b[otherMetric(r.objective)], 4)}  `,
          h("code", { class: "params", text: Object.entries(b.params || {}).map(([k, v]) => `${k}=${fmt(v, 4)}`).join(" ") }));
      } else {
        clear($("study-best"), h("span", { class: "muted", text: "no finished trial yet" }));
      }
      const cancel = $("cancel-study");
      if (cancel) cancel.hidden = !ACTIVE.has(r.state);
      renderRounds();
    }

    function renderRounds() {
      const r = st.rec;
      const rows = (r.rounds || []).map((rd) => {
        const c = rd.counts || {};
        const done = Object.entries(c).filter(([s]) => !ACTIVE.has(s)).reduce((a, [, n]) => a + n, 0);
        return h("tr", { "data-testid": "round-row" },
          h("td", { class: "num" }, h("span", { class: "swatch", "data-round": rd.index }), String(rd.index)),
          h("td", { class: "num", text: `${done}/${rd.trials ?? "?"}` }),
          h("td", null, h("code", { class: "region", text: formatRegion(rd.region, st.dims) })));
      });
      clear($("rounds"), rows.length
        ? h("table", { class: "data compact" }, h("thead", null, h("tr", null, h("th", { text: "round" }), h("th", { text: "done" }), h("th", { text: "region" }))), h("tbody", null, rows))
        : h("p", { class: "muted", text: "no rounds yet" }));
      // colour the swatches with presentation attributes (no inline styles): tiny SVGs
      for (const sw of $("rounds").querySelectorAll(".swatch")) {
        const svg = P.el("svg", { width: 10, height: 10, viewBox: "0 0 10 10", class: "swatch-svg" });
        P.el("circle", { cx: 5, cy: 5, r: 4.5, fill: P.roundColour(Number(sw.dataset.round), (r.rounds || []).length) }, svg);
        sw.appendChild(svg);
      }
    }

    /* plots */
    function renderLegend() {
      const rounds = (st.rec.rounds || []).map((r) => r.index);
      const box = $("legend");
      clear(box);
      if (!rounds.length) return;
      const svgW = 20 + Math.min(rounds.length, 24) * 64 + 120;
      const svg = P.el("svg", { viewBox: `0 0 ${svgW} 20`, class: "legend-svg", width: "100%", "data-testid": "legend-svg" }, box);
      let x = 6;
      const shown = rounds.length > 24 ? rounds.filter((k, i) => i % Math.ceil(rounds.length / 24) === 0) : rounds;
      for (const k of shown) {
        P.el("circle", { cx: x + 5, cy: 10, r: 5, fill: P.roundColour(k, rounds.length) }, svg);
        const t = P.el("text", { x: x + 14, y: 14, class: "legend-label" }, svg);
        t.textContent = `round ${k}`;
        x += 64;
      }
      P.el("path", { d: P.starPath(x + 6, 10, 8), class: "star" }, svg);
      const t = P.el("text", { x: x + 18, y: 14, class: "legend-label" }, svg);
      t.textContent = "best";
      const t2 = P.el("text", { x: x + 52, y: 14, class: "legend-label faint-label" }, svg);
      t2.textContent = "faint: pruned/failed";
    }

    function renderPlots() {
      const box = $("plots");
      const rec = st.rec;
      if (!st.dims.length) {
        clear(box, h("p", { class: "muted", text: "this study searches no hyperparameter" }));
        return;
      }
      renderLegend();
      const logY = $("logy").checked;
      const bestId = rec.best && rec.best.id;
      const nRounds = (rec.rounds || []).length;
      const open = (p) => { window.location.href = link.trial(p.id); };
      const bands = nRounds <= 4;
      clear(box);
      if (!st.points.length) box.appendChild(h("p", { class: "muted", "data-testid": "no-points", text: "no trial has finished yet" }));
      const draws = [];
      for (const dim of st.dims) {
        const row = h("div", { class: "dim-row", "data-testid": `dim-${dim.name}` });
        box.appendChild(row);
        const cell = h("div", { class: "plot-cell", "data-testid": `scatter-${dim.name}`, "data-dim": dim.name });
        row.appendChild(cell);
        draws.push(() => P.scatter(cell, { dim, points: st.points, rounds: rec.rounds, objective: rec.objective, best: bestId, logY, roundCount: nRounds, bands, onClick: open, testid: "scatter" }));
        if (dim.kind !== "choice") {
          const rc = h("div", { class: "plot-cell", "data-testid": `regions-${dim.name}`, "data-dim": dim.name });
          row.appendChild(rc);
          draws.push(() => P.regions(rc, { dim, rounds: rec.rounds, points: st.points, objective: rec.objective, maximize: maximize(rec.objective), best: bestId, onClick: open, testid: "regions" }));
        }
      }
      // draw once every cell is laid out, at its own width
      for (const draw of draws) draw();
      const pc = $("parallel");
      if (st.points.length) {
        P.parallel(pc, { dims: st.dims, points: st.points, objective: rec.objective, maximize: maximize(rec.objective), best: bestId, logY, onClick: open, testid: "parallel-svg" });
      } else {
        clear(pc, h("p", { class: "muted", text: "no trial has finished yet" }));
      }
    }

    /* leaderboard */
    const SORTABLE = new Set(["objective", "val_loss", "val_accuracy", "seconds", "round", "id"]);

    function lbColumns() {
      const obj = st.objective;
      const names = st.dims.map((d) => d.name);
      return [
        { key: "rank", label: "#", num: true },
        { key: "id", label: "trial", sort: "id" },
        { key: "round", label: "round", num: true, sort: "round" },
        { key: "status", label: "status" },
        { key: obj, label: obj, num: true, sort: "objective" },
        { key: otherMetric(obj), label: otherMetric(obj), num: true, sort: otherMetric(obj) },
        ...names.map((n) => ({ key: "param:" + n, label: n, num: true, param: true })),
        { key: "epochs_run", label: "epochs", num: true },
        { key: "seconds", label: "seconds", num: true, sort: "seconds" },
        { key: "attempts", label: "attempts", num: true },
        { key: "worker", label: "worker" },
      ];
    }

    function renderLbHead() {
      const cols = lbColumns();
      const head = $("lb-head");
      clear(head, h("tr", null, cols.map((c) => {
        const th = h("th", { class: (c.num ? "num " : "") + (c.param ? "param" : ""), "data-sort": c.sort && SORTABLE.has(c.sort) ? c.sort : null, "data-testid": `lb-col-${c.sort || c.key}`, text: c.label });
        if (th.dataset.sort) {
          th.addEventListener("click", () => {
            const k = th.dataset.sort;
            if (st.lb.sort === k) st.lb.order = (st.lb.order || defaultOrder(k)) === "asc" ? "desc" : "asc";
            else { st.lb.sort = k; st.lb.order = defaultOrder(k); }
            st.lb.offset = 0;
            loadBoard();
          });
        }
        return th;
      })));
      markSorted(head, st.lb.sort, st.lb.order || defaultOrder(st.lb.sort));
    }

    function defaultOrder(k) {
      if (k === "objective") return maximize(st.objective) ? "desc" : "asc";
      if (k === "val_accuracy") return "desc";
      return "asc";
    }

    function renderBoard() {
      const lb = st.lb;
      const cols = lbColumns();
      const body = $("lb-body");
      if (!lb.rows.length) {
        clear(body, h("tr", { class: "placeholder" }, h("td", { colspan: cols.length, text: lb.total ? "no trials on this page" : "no trials yet" })));
      } else {
        const bestId = st.rec && st.rec.best && st.rec.best.id;
        clear(body, lb.rows.map((t, i) => h("tr", { "data-testid": "lb-row", "data-trial": t.id, "data-status": t.status, class: (t.status === "complete" ? "" : "dim ") + (t.id === bestId ? "best-row" : "") },
          cols.map((c) => {
            let v;
            if (c.key === "rank") v = lb.offset + i + 1;
            else if (c.param) v = (t.params || {})[c.key.slice(6)];
            else v = t[c.key];
            const col = c.key;
            const raw = v === null || v === undefined ? "" : String(v);
            if (c.key === "id") return h("td", { "data-col": col, "data-value": raw }, h("a", { href: link.trial(t.id), text: t.id }));
            if (c.key === "status") return h("td", { "data-col": col, "data-value": raw }, stateBadge(t.status));
            if (c.key === "seconds") return h("td", { class: "num", "data-col": col, "data-value": raw, text: v === null || v === undefined ? "–" : duration(v) });
            if (c.key === "worker") return h("td", { class: "sub", "data-col": col, "data-value": raw, text: v || "–" });
            return h("td", { class: c.num ? "num" : "", "data-col": col, "data-value": raw, text: typeof v === "number" ? fmt(v, c.param ? 4 : 5) : v ?? "–" });
          }))));
      }
      const first = lb.total ? lb.offset + 1 : 0;
      const last = lb.offset + lb.rows.length;
      $("lb-info").textContent = `${first}–${last} of ${lb.total}`;
      $("lb-info").dataset.total = lb.total;
      $("lb-prev").disabled = lb.offset <= 0;
      $("lb-next").disabled = last >= lb.total;
    }

    let boardSeq = 0;
    async function loadBoard() {
      const lb = st.lb;
      const seq = ++boardSeq;
      const qs = new URLSearchParams({ offset: lb.offset, limit: lb.limit, sort: lb.sort });
      if (lb.order) qs.set("order", lb.order);
      if (lb.status) qs.set("status", lb.status);
      renderLbHead();
      try {
        const data = await getJSON(`/api/studies/${enc(ID)}/trials?${qs}`);
        if (seq !== boardSeq) return;
        lb.total = data.total ?? (data.trials || []).length;
        lb.rows = data.trials || [];
        if (lb.offset >= lb.total && lb.total > 0 && !lb.rows.length) {
          lb.offset = Math.max(0, Math.floor((lb.total - 1) / lb.limit) * lb.limit);
          loadBoard();
          return;
        }
        renderBoard();
      } catch (e) {
        if (seq === boardSeq && !lb.rows.length) errorNote($("lb-body"), e, "could not load the trials");
      }
    }

    /* curves */
    function curveSeries(curves, metric, opts) {
      const out = [];
      curves.forEach((c, i) => {
        const eps = epochsOf(c.epochs || c.curve || c);
        const colour = P.seriesColour(opts.offset + i);
        const faint = c.status === "pruned" || c.status === "failed" || c.status === "diverged";
        const label = opts.label(c, i);
        out.push({ key: c.trial, trial: c.trial, label, legendLabel: opts.legendLabel ? opts.legendLabel(c, i) : label, colour: faint ? "#9a9a9a" : colour, faint,
          points: eps.map((e) => [e.epoch, e[metric]]), testid: opts.testid });
        if (metric === "val_loss" && opts.train && !faint) {
          out.push({ key: c.trial + ":train", trial: null, label: label + " (train_loss)", colour, dashed: true, legend: false,
            points: eps.map((e) => [e.epoch, e.train_loss]) });
        }
      });
      return out;
    }

    function renderTop() {
      const metric = $("curve-metric").value;
      const box = $("curves-top");
      if (!st.top.length) { clear(box, h("p", { class: "muted", "data-testid": "no-top", text: "no finished trial yet" })); return; }
      const obj = st.objective;
      const series = curveSeries(st.top, metric, {
        offset: 0, train: true, testid: "top-curve",
        label: (c, i) => `#${i + 1} ${c.trial} (${c.status})`,
        legendLabel: (c, i) => {
          const v = typeof c.value === "number" ? c.value : c[obj];
          return `#${i + 1} ${c.trial.replace(/^.*-(r\d+-t\d+)$/, "$1")}` + (typeof v === "number" ? ` ${fmt(v, 3)}` : "");
        },
      });
      P.lines(box, { series, logY: metric !== "val_accuracy", yLabel: metric + (metric === "val_loss" ? " (dashed: train_loss)" : ""), legend: true, testid: "top-curves-svg" });
    }

    const renderRunning = perFrame(() => {
      const metric = $("curve-metric").value;
      const box = $("curves-running");
      const curves = Array.from(st.running.entries()).map(([trial, c]) => ({ trial, status: c.status, epochs: c.epochs }));
      $("running-count").textContent = curves.length ? `(${curves.length})` : "";
      if (!curves.length) { clear(box, h("p", { class: "muted", "data-testid": "no-running", text: "no trial is running" })); return; }
      const series = curveSeries(curves, metric, {
        offset: 5, train: false, testid: "running-curve",
        label: (c) => `${c.trial} (${c.status || "running"}, ${c.epochs.length} epochs)`,
        legendLabel: (c) => c.trial.replace(/^.*-(r\d+-t\d+)$/, "$1"),
      });
      P.lines(box, { series, logY: metric !== "val_accuracy", yLabel: metric, legend: true, testid: "running-curves-svg", hover: false, emptyText: "waiting for the first epoch" });
    });

    async function loadTop() {
      try {
        const data = await getJSON(`/api/studies/${enc(ID)}/curves?which=top&k=5`);
        st.top = data.curves || [];
        renderTop();
      } catch (e) {
        if (!st.top.length) errorNote($("curves-top"), e, "could not load the curves");
      }
    }

    async function loadRunning() {
      try {
        const data = await getJSON(`/api/studies/${enc(ID)}/curves?which=running`);
        const next = new Map();
        for (const c of data.curves || []) {
          const eps = epochsOf(c.epochs || c.curve).slice();
          const known = st.running.get(c.trial);
          // keep epochs pushed by events meanwhile, when they run ahead of this answer
          if (known && known.epochs.length > eps.length && (eps.length === 0 || known.epochs[eps.length - 1].epoch === eps[eps.length - 1].epoch)) {
            next.set(c.trial, { status: c.status || "running", epochs: known.epochs });
          } else {
            next.set(c.trial, { status: c.status || "running", epochs: eps });
          }
        }
        st.running = next;
        renderRunning();
      } catch (e) {
        if (!st.running.size) errorNote($("curves-running"), e, "could not load the running curves");
      }
    }

    function onEpoch(ev) {
      if (!ev || !ev.trial) return;
      if (ev.study && ev.study !== ID) return;
      let c = st.running.get(ev.trial);
      if (!c) {
        c = { status: "running", epochs: [] };
        st.running.set(ev.trial, c);
        laterRunning(); // fetch its earlier epochs
      }
      const row = { epoch: ev.epoch, train_loss: ev.train_loss, val_loss: ev.val_loss, val_accuracy: ev.val_accuracy, learning_rate: ev.learning_rate };
      const eps = c.epochs;
      while (eps.length && eps[eps.length - 1].epoch >= row.epoch) eps.pop(); // a retried attempt starts again
      eps.push(row);
      renderRunning();
    }

    /* importance */
    async function loadImportance() {
      const box = $("importance");
      try {
        const data = await getJSON(`/api/studies/${enc(ID)}/importance`);
        const items = data && Array.isArray(data.importance) ? data.importance : null;
        if (!items || !items.length) {
          clear(box, h("p", { class: "muted", "data-testid": "importance-none", text: (data && data.reason) || "not measured yet" }));
          return;
        }
        P.bars(box, {
          items: items.map((it) => ({ label: it.hyperparameter || it.name, value: it.share, tip: `${it.hyperparameter || it.name}: ${(100 * it.share).toFixed(1)} % of the variance` })),
          max: 1, format: (v) => `${(100 * v).toFixed(1)} %`, testid: "importance-bars",
        });
        if (data.trials) box.appendChild(h("p", { class: "muted small", text: `measured over ${data.trials} trials` }));
      } catch (e) {
        errorNote(box, e, "could not measure the importance");
      }
    }

    /* loading */
    async function loadStudy() {
      let rec;
      try {
        rec = await getJSON(`/api/studies/${enc(ID)}`);
      } catch (e) {
        if (!st.rec) {
          if (e instanceof HttpError && e.status === 404) {
            clear($("study-meta"), h("p", { class: "error-note", "data-testid": "load-error", text: `no study ${ID}` }));
          } else {
            errorNote($("study-meta"), e, "could not load the study");
          }
        }
        return null;
      }
      st.rec = rec;
      st.objective = rec.objective || "val_loss";
      renderHead();
      return rec;
    }

    async function loadPoints() {
      try {
        const data = await getJSON(`/api/studies/${enc(ID)}/points?limit=5000`);
        st.points = data.points || [];
        if (saved.logy === undefined && !st.autoLog) {
          // like `caviar plot`: a loss spanning more than a factor of 8 reads better on a log axis
          st.autoLog = true;
          const vals = st.points.map((p) => p.value).filter((v) => typeof v === "number" && v > 0);
          if (!maximize(st.objective) && vals.length > 1 && Math.max(...vals) / Math.min(...vals) > 8) $("logy").checked = true;
        }
        if (!st.dims.length || !(st.rec.space && st.rec.space.length)) st.dims = dimsOf(st.rec, st.points);
        renderPlots();
        if (data.total > st.points.length) {
          $("plots").appendChild(h("p", { class: "muted small", text: `showing ${st.points.length} of ${data.total} trials` }));
        }
      } catch (e) {
        if (!st.points.length) errorNote($("plots"), e, "could not load the trials");
      }
    }

    async function loadAll() {
      const rec = await loadStudy();
      if (!rec) {
        if (!st.rec) {
          for (const id of ["plots", "curves-top", "curves-running", "importance", "parallel", "rounds"]) clear($(id), h("p", { class: "muted", text: "–" }));
          clear($("lb-body"));
        }
        return;
      }
      st.dims = dimsOf(rec, []);
      renderLbHead();
      await Promise.all([loadPoints(), loadBoard(), loadTop(), loadRunning(), loadImportance()]);
    }

    const laterStudy = debounce(loadStudy, 300);
    const laterRunning = debounce(loadRunning, 400);
    const laterFinished = debounce(() => { loadPoints(); loadBoard(); loadTop(); loadRunning(); }, 600);
    const laterImportance = debounce(loadImportance, 5000);

    $("lb-prev").addEventListener("click", () => { st.lb.offset = Math.max(0, st.lb.offset - st.lb.limit); loadBoard(); });
    $("lb-next").addEventListener("click", () => { if (st.lb.offset + st.lb.limit < st.lb.total) { st.lb.offset += st.lb.limit; loadBoard(); } });
    $("lb-size").addEventListener("change", () => { st.lb.limit = Number($("lb-size").value) || 50; st.lb.offset = 0; remember(); loadBoard(); });
    $("lb-status").addEventListener("change", () => { st.lb.status = $("lb-status").value; st.lb.offset = 0; loadBoard(); });
    $("logy").addEventListener("change", () => { remember(); if (st.rec) renderPlots(); });
    $("curve-metric").addEventListener("change", () => { remember(); renderTop(); renderRunning(); });

    const cancel = $("cancel-study");
    if (cancel) {
      cancel.addEventListener("click", async () => {
        if (!window.confirm(`Cancel study ${ID}? Queued trials are dropped; running ones stop.`)) return;
        cancel.disabled = true;
        const r = await post(`/api/studies/${enc(ID)}/cancel`, {});
        cancel.disabled = false;
        formMsg($("cancel-result"), r.ok, r.ok ? "cancel requested" : r.error);
        if (r.ok) loadStudy();
      });
    }

    live(`study=${enc(ID)}`, {
      study: () => { laterStudy(); },
      trial: (t) => {
        laterStudy();
        const status = t && t.status;
        if (t && t.id && status && status !== "running" && st.running.has(t.id)) {
          st.running.get(t.id).status = status;
        }
        if (!status || status !== "running") { laterFinished(); laterImportance(); } else laterRunning();
      },
      epoch: onEpoch,
      reconnect: loadAll,
    });
    Conn.onRecover.push(() => { if (!st.rec) loadAll(); });
    resizers.push(() => { if (st.rec) { renderPlots(); renderTop(); renderRunning(); loadImportance(); } });
    loadAll();
  }

  /* =============================================================================================== */
  /* trial                                                                                           */
  /* =============================================================================================== */

  function kvRows(tbody, pairs, testPrefix) {
    clear(tbody, pairs.map(([k, v, cls]) => h("tr", { class: cls || "", "data-testid": testPrefix ? `${testPrefix}-${k}` : null, "data-key": k },
      h("th", { text: k }), h("td", { class: typeof v === "number" ? "num" : "", text: typeof v === "number" ? fmt(v, 6) : v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v) }))));
  }

  function lossChart(container, epochs, metric, opts) {
    const o = opts || {};
    let series;
    if (metric === "loss") {
      series = [
        { key: "val_loss", label: "val_loss", colour: P.seriesColour(0), points: epochs.map((e) => [e.epoch, e.val_loss]), testid: o.testid, trial: o.trial },
        { key: "train_loss", label: "train_loss", colour: P.seriesColour(1), dashed: true, legend: true, points: epochs.map((e) => [e.epoch, e.train_loss]) },
      ];
    } else {
      series = [{ key: metric, label: metric, colour: P.seriesColour(metric === "learning_rate" ? 2 : 0), points: epochs.map((e) => [e.epoch, e[metric]]), testid: o.testid, trial: o.trial }];
    }
    P.lines(container, {
      series, logY: metric !== "val_accuracy", yLabel: metric === "loss" ? "val_loss (solid), train_loss (dashed)" : metric,
      markers: o.markers, legend: metric === "loss", xMax: o.xMax, testid: o.svgTestid, emptyText: o.emptyText,
    });
  }

  /** The reproduce/save(/show) commands in their <code> boxes; env (single-threaded) prefixes reproduce. */
  function showCommands(cmds, status) {
    const rep = $("cmd-reproduce");
    if (rep) rep.textContent = cmds.reproduce ? (cmds.env ? `${cmds.env} ${cmds.reproduce}` : cmds.reproduce) : "–";
    const save = $("cmd-save");
    if (save) {
      save.textContent = cmds.save || `no model to save (${status || "unknown"})`;
      save.classList.toggle("muted", !cmds.save);
      const btn = document.querySelector("button[data-copy='cmd-save']");
      if (btn) btn.disabled = !cmds.save;
    }
    const show = $("cmd-show");
    if (show) show.textContent = cmds.show || "–";
  }

  function trialPage() {
    const st = { rec: null, epochs: [] };
    const renderCurve = perFrame(() => {
      lossChart($("trial-curve"), st.epochs, $("curve-metric").value, { testid: "trial-curve-path", trial: ID, svgTestid: "trial-curve-svg", emptyText: st.rec && st.rec.status === "queued" ? "queued: no epoch yet" : "no epochs recorded" });
    });

    function render() {
      const t = st.rec;
      document.title = `${t.id} · caviar dashboard`;
      setState($("trial-status"), t.status);
      const study = t.study || t.study_id || studyOfTrial(t.id);
      const meta = [];
      if (study) meta.push(h("span", { class: "meta-item" }, h("span", { class: "meta-key", text: "study" }), " ", h("a", { href: link.study(study), "data-testid": "trial-study-link", text: study })));
      for (const [k, v] of [["round", t.round], ["index", t.index], ["seed", t.seed], ["attempts", t.attempts], ["worker", t.worker], ["started", t.started_at], ["finished", t.finished_at]]) {
        if (v === null || v === undefined) continue;
        meta.push(h("span", { class: "meta-item", "data-testid": `trial-${k}` }, h("span", { class: "meta-key", text: k }), " ", String(v)));
      }
      clear($("trial-meta"), meta);
      const err = $("trial-error");
      err.hidden = !t.error;
      err.textContent = t.error ? "error: " + t.error : "";
      const params = t.params || {};
      let config = t.config || t.hyperparameters || null;
      if (!config && t.commands && t.commands.reproduce) {
        // the full configuration is the reproduce command's --set values ([fixed], params, seed)
        config = {};
        const re = /--set (?:'([^']*)'|(\S+))/g;
        let m;
        while ((m = re.exec(t.commands.reproduce)) !== null) {
          const pair = m[1] !== undefined ? m[1] : m[2];
          const i = pair.indexOf("=");
          if (i > 0) config[pair.slice(0, i)] = pair.slice(i + 1);
        }
      }
      const rows = Object.entries(params).map(([k, v]) => [k, v, "searched"]);
      if (config && typeof config === "object") {
        for (const [k, v] of Object.entries(config)) if (!(k in params)) rows.push([k, v, "fixed"]);
      }
      if (!rows.some(([k]) => k === "seed")) rows.push(["seed", t.seed, "fixed"]);
      kvRows($("trial-params").tBodies[0], rows, "param");
      kvRows($("trial-result").tBodies[0], [
        ["val_loss", t.val_loss], ["val_accuracy", t.val_accuracy], ["train_loss", t.train_loss], ["epochs_run", t.epochs_run],
        ["seconds", t.seconds === null || t.seconds === undefined ? null : duration(t.seconds)],
        ["samples/s", t.samples_per_second], ["attempts", t.attempts], ["worker", t.worker],
      ], "result");
      showCommands(t.commands || {}, t.status);
    }

    async function load() {
      try {
        const t = await getJSON(`/api/trials/${enc(ID)}`);
        st.rec = t;
        st.epochs = epochsOf(t.curve).slice();
        render();
        renderCurve();
        return t;
      } catch (e) {
        if (!st.rec) {
          const msg = e instanceof HttpError && e.status === 404 ? `no trial ${ID}` : null;
          if (msg) clear($("trial-meta"), h("p", { class: "error-note", "data-testid": "load-error", text: msg }));
          else errorNote($("trial-meta"), e, "could not load the trial");
          for (const id of ["trial-curve"]) clear($(id), h("p", { class: "muted", text: "–" }));
          for (const id of ["trial-params", "trial-result"]) clear($(id).tBodies[0]);
        }
        return null;
      }
    }

    $("curve-metric").addEventListener("change", renderCurve);
    resizers.push(renderCurve);
    const later = debounce(load, 300);
    load().then((t) => {
      const study = (t && (t.study || t.study_id)) || studyOfTrial(ID);
      if (!study) return;
      live(`study=${enc(study)}`, {
        trial: (ev) => { if (!ev || !ev.id || ev.id === ID) later(); },
        epoch: (ev) => {
          if (!ev || ev.trial !== ID) return;
          while (st.epochs.length && st.epochs[st.epochs.length - 1].epoch >= ev.epoch) st.epochs.pop();
          st.epochs.push(ev);
          renderCurve();
        },
        reconnect: load,
      });
    });
    Conn.onRecover.push(() => { if (!st.rec) load(); });
  }

  /* =============================================================================================== */
  /* panda session                                                                                   */
  /* =============================================================================================== */

  function changeLabel(c) {
    if (c.key === "rollback") return `rollback→${c.value}`;
    if (c.value === null || c.value === undefined) return c.key;
    return `${c.key}=${typeof c.value === "number" ? fmt(c.value, 6) : c.value}`;
  }

  function pandaPage() {
    const st = { rec: null, history: [] };
    const renderCurve = perFrame(() => {
      const r = st.rec;
      if (!r) return;
      const markers = (r.changes || []).filter((c) => typeof c.epoch === "number").map((c) => ({ x: c.epoch, label: changeLabel(c), cls: `mk-${c.key}` }));
      lossChart($("panda-curve"), st.history, $("curve-metric").value, {
        markers, xMax: r.epochs ? Math.min(r.epochs, Math.max(10, Math.ceil((r.epoch || 0) * 1.25))) : undefined, testid: "panda-curve-path", trial: r.id, svgTestid: "panda-curve-svg",
        emptyText: r.state === "running" ? "waiting for the first epoch" : "no epochs trained",
      });
    });

    function render() {
      const r = st.rec;
      document.title = `${r.name || r.id} · caviar dashboard`;
      $("panda-name").textContent = r.name && r.name !== r.id && r.name !== "panda" ? `${r.name} · ${r.id}` : r.id;
      setState($("panda-state"), r.state);
      const meta = [];
      for (const [k, v] of [["epoch", r.epochs ? `${r.epoch ?? 0} of ${r.epochs}` : r.epoch], ["val_loss", fmt(r.val_loss, 5)], ["val_accuracy", fmt(r.val_accuracy, 4)],
        ["dataset", r.source && (r.source.dataset || r.source.data)], ["worker", r.worker], ["heartbeat", r.heartbeat_age === null || r.heartbeat_age === undefined ? null : age(r.heartbeat_age) + " ago"], ["created", r.created_at]]) {
        if (v === null || v === undefined || v === "–") continue;
        meta.push(h("span", { class: "meta-item", "data-testid": `panda-${k}` }, h("span", { class: "meta-key", text: k }), " ", String(v)));
      }
      clear($("panda-meta"), meta);
      clear($("panda-progress"), progressBar(r.epoch || 0, r.epochs || 0, "panda-progress-bar"));
      const pending = r.pending || [];
      const pend = $("panda-pending");
      pend.hidden = !pending.length;
      clear(pend, pending.length ? ["pending: ", pending.map((p) => h("code", { class: "pending-item", text: typeof p === "object" ? JSON.stringify(p) : String(p) }))] : []);
      const hint = $("panda-hint");
      hint.hidden = !r.hint && !r.error;
      hint.textContent = r.error ? "error: " + r.error : r.hint ? "hint: " + (typeof r.hint === "object" ? JSON.stringify(r.hint) : r.hint) : "";
      kvRows($("panda-config").tBodies[0], Object.entries(r.config || {}), "config");
      if (r.commands) showCommands(r.commands, r.state);
      const changes = r.changes || [];
      clear($("panda-changes").tBodies[0], changes.length
        ? [h("tr", null, h("th", { text: "epoch" }), h("th", { text: "change" })), ...changes.map((c) => h("tr", { "data-testid": "change-row", "data-key": c.key }, h("td", { class: "num", text: c.epoch }), h("td", null, h("code", { text: changeLabel(c) }))))]
        : [h("tr", { class: "placeholder" }, h("td", { text: "no changes yet" }))]);
      const lineage = [];
      if (r.parent) {
        const p = typeof r.parent === "object" ? r.parent : { id: r.parent };
        lineage.push(h("div", null, "forked from ", h("a", { href: link.panda(p.id || p.session), "data-testid": "panda-parent", text: p.id || p.session }), p.epoch !== undefined ? ` at epoch ${p.epoch}` : ""));
      }
      const kids = r.children || [];
      if (kids.length) {
        lineage.push(h("div", null, "forks: ", kids.map((c) => {
          const k = typeof c === "object" ? c : { id: c };
          return h("a", { href: link.panda(k.id), class: "fork-link", text: k.id + (k.epoch !== undefined ? ` (epoch ${k.epoch})` : "") });
        })));
      }
      clear($("panda-lineage"), lineage.length ? lineage : [h("span", { class: "muted", text: "no parent, no forks" })]);
      // controls follow the state
      const running = r.state === "running" || r.state === "queued";
      const rb = $("resume-btn");
      if (rb) rb.disabled = running;
      const ps = $("pause-submit");
      if (ps) ps.disabled = !running;
      const re = $("rollback-epoch");
      if (re && !re.value && r.epoch) re.placeholder = `0…${r.epoch}`;
      const fe = $("fork-epoch");
      if (fe && !fe.value && r.epoch) fe.placeholder = `0…${r.epoch}`;
    }

    let seq = 0;
    async function load() {
      const mine = ++seq;
      try {
        const r = await getJSON(`/api/panda/${enc(ID)}`);
        if (mine !== seq) return r;
        apply(r);
        return r;
      } catch (e) {
        if (!st.rec) {
          const msg = e instanceof HttpError && e.status === 404 ? `no panda session ${ID}` : null;
          if (msg) clear($("panda-meta"), h("p", { class: "error-note", "data-testid": "load-error", text: msg }));
          else errorNote($("panda-meta"), e, "could not load the session");
          clear($("panda-curve"), h("p", { class: "muted", text: "–" }));
          for (const id of ["panda-config", "panda-changes"]) clear($(id).tBodies[0]);
        }
        return null;
      }
    }

    const later = debounce(load, 250);

    function controlForms() {
      const base = `/api/panda/${enc(ID)}`;
      async function submit(btn, msgNode, path, body, okText) {
        if (btn) btn.disabled = true;
        if (msgNode) { msgNode.className = "form-msg pending"; msgNode.setAttribute("data-result", "pending"); msgNode.textContent = "sending…"; }
        const r = await post(base + path, body);
        if (btn) btn.disabled = false;
        formMsg(msgNode, r.ok, r.ok ? (typeof okText === "function" ? okText(r.data) : okText) : r.error);
        if (r.ok) later();
        return r;
      }
      function values(textarea, msgNode, required) {
        const { values: v, bad } = parsePairs(textarea.value);
        if (bad.length) { formMsg(msgNode, false, `not key=value: ${bad.join(", ")}`); return null; }
        if (required && !Object.keys(v).length) { formMsg(msgNode, false, "give at least one key=value"); return null; }
        return v;
      }
      $("form-set").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const msg = $("set-msg");
        const v = values($("set-values"), msg, true);
        if (!v) return;
        const at = intOrNull($("set-at-epoch"));
        if (Number.isNaN(at)) { formMsg(msg, false, "the epoch must be a whole number"); return; }
        const r = await submit($("set-submit"), msg, "/set", { values: v, at_epoch: at },
          (d) => (d && d.message) || `requested ${Object.entries(v).map(([k, x]) => `${k}=${x}`).join(" ")} ${at === null ? "at the next epoch boundary" : `after epoch ${at}`}`);
        if (r.ok) $("set-values").value = "";
      });
      $("form-pause").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const at = intOrNull($("pause-at-epoch"));
        if (Number.isNaN(at)) { formMsg($("pause-msg"), false, "the epoch must be a whole number"); return; }
        await submit($("pause-submit"), $("pause-msg"), "/pause", { at_epoch: at }, at === null ? "pause requested at the next epoch boundary" : `pause requested after epoch ${at}`);
      });
      $("resume-btn").addEventListener("click", () => submit($("resume-btn"), $("pause-msg"), "/resume", {}, "resumed"));
      $("stop-btn").addEventListener("click", () => {
        if (!window.confirm(`Stop ${ID} for good? (A fork can still start from any kept epoch.)`)) return;
        submit($("stop-btn"), $("pause-msg"), "/stop", {}, "stop requested");
      });
      $("form-rollback").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const msg = $("rollback-msg");
        const to = intOrNull($("rollback-epoch"));
        if (to === null || Number.isNaN(to)) { formMsg(msg, false, "give the epoch to roll back to"); return; }
        const v = values($("rollback-values"), msg, false);
        if (!v) return;
        await submit($("rollback-submit"), msg, "/rollback", { to_epoch: to, values: v }, `rolled back to epoch ${to}`);
      });
      $("form-fork").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const msg = $("fork-msg");
        const from = intOrNull($("fork-epoch"));
        if (from === null || Number.isNaN(from)) { formMsg(msg, false, "give the epoch to fork from"); return; }
        const v = values($("fork-values"), msg, false);
        if (!v) return;
        const name = $("fork-name").value.trim() || null;
        const r = await submit($("fork-submit"), msg, "/fork", { from_epoch: from, values: v, name }, (d) => `forked: ${d && d.id}`);
        if (r.ok && r.data && r.data.id) {
          clear(msg, "forked: ", h("a", { href: link.panda(r.data.id), "data-testid": "fork-link", text: r.data.id }));
        }
      });
    }

    $("curve-metric").addEventListener("change", renderCurve);
    resizers.push(renderCurve);
    if (CONTROL && $("form-set")) controlForms();
    function apply(r) {
      st.rec = r;
      st.history = epochsOf(r.history && r.history.length ? r.history : r.curve).slice();
      render();
      renderCurve();
    }

    live(`panda=${enc(ID)}`, {
      // the event is the session's whole record: drawn as it comes, no request
      panda: (r) => { if (r && r.id === ID && Array.isArray(r.history)) { seq += 1; apply(r); } else later(); },
      study: later,
      trial: later,
      epoch: (ev) => {
        // append at once (the record follows, debounced)
        if (ev && typeof ev.epoch === "number" && st.rec) {
          while (st.history.length && st.history[st.history.length - 1].epoch >= ev.epoch) st.history.pop();
          st.history.push(ev);
          renderCurve();
        }
      },
      reconnect: load,
    });
    Conn.onRecover.push(() => { if (!st.rec) load(); });
    load();
  }

  /* =============================================================================================== */
  /* workers                                                                                         */
  /* =============================================================================================== */

  function workersPage() {
    let loaded = false;
    const trialLink = (t) => {
      const id = typeof t === "object" ? t.id || t.trial : t;
      const extra = typeof t === "object" && t.epoch !== undefined ? ` (epoch ${t.epoch})` : "";
      return h("a", { href: /^panda-/.test(id) ? link.panda(id) : link.trial(id), class: "trial-link", "data-testid": "worker-trial", text: id + extra });
    };
    async function load() {
      try {
        const data = await getJSON("/api/workers");
        loaded = true;
        const q = [];
        if (data.broker || data.queue_depth !== null && data.queue_depth !== undefined) {
          q.push(h("span", { class: "chip", "data-testid": "queue-depth", "data-depth": data.queue_depth ?? "" }, "queue depth ", h("b", { text: data.queue_depth ?? "–" })));
        } else {
          q.push(h("span", { class: "chip muted", "data-testid": "queue-depth", "data-depth": "", title: "caviar dashboard --broker redis://… shows the queue", text: "no broker: local pools only" }));
        }
        q.push(h("span", { class: "chip" }, "workers ", h("b", { text: (data.workers || []).length })));
        q.push(h("span", { class: "chip" }, "stale ", h("b", { text: (data.stale || []).length })));
        if (data.broker) q.push(h("span", { class: "chip muted", "data-testid": "broker", text: "broker " + (typeof data.broker === "object" ? JSON.stringify(data.broker) : data.broker) }));
        if (data.queue && data.queue.error) q.push(h("span", { class: "chip st-failed", text: "queue: " + data.queue.error }));
        if (data.error) q.push(h("span", { class: "chip st-failed", text: data.error }));
        clear($("queue"), q);
        const ws = data.workers || [];
        clear($("workers-body"), ws.length ? ws.map((w) => {
          const running = Array.isArray(w.running) ? w.running : [];
          return h("tr", { "data-testid": "worker-row", "data-worker": w.worker },
            h("td", null, h("code", { text: w.worker })),
            h("td", { class: "num", text: running.length }),
            h("td", null, running.length ? running.map(trialLink) : h("span", { class: "muted", text: "idle" })),
            h("td", { class: "num", text: w.last_heartbeat_age === null || w.last_heartbeat_age === undefined ? "–" : age(w.last_heartbeat_age) + " ago" }));
        }) : [h("tr", { class: "placeholder" }, h("td", { colspan: 4, text: "no trial is running on any worker" }))]);
        const stale = data.stale || [];
        clear($("stale"), stale.length
          ? h("ul", { class: "stale-list" }, stale.map((t) => h("li", { "data-testid": "stale-trial" }, trialLink(t),
            typeof t === "object" && t.worker ? h("span", { class: "sub", text: ` on ${t.worker}` }) : null,
            typeof t === "object" && t.heartbeat_age !== undefined ? h("span", { class: "sub", text: ` · heartbeat ${age(t.heartbeat_age)} ago` }) : null)))
          : h("p", { class: "muted", "data-testid": "no-stale", text: "none" }));
      } catch (e) {
        if (!loaded) { errorNote($("workers-body"), e, "could not read the workers"); clear($("queue")); clear($("stale")); }
      }
    }
    const later = debounce(load, 500);
    live("", { trial: later, study: later, panda: later, worker: later, reconnect: load });
    Conn.onRecover.push(load);
    setInterval(() => { if (!Conn.lost) load(); }, 5000);
    load();
  }

  /* ---- start ------------------------------------------------------------------------------------ */

  initToken();
  initCopy();
  const pages = { studies: studiesPage, study: studyPage, trial: trialPage, panda: pandaPage, workers: workersPage };
  if (pages[PAGE]) {
    try { pages[PAGE](); } catch (e) { console.error(e); }
  } else {
    // 404 and other plain pages: only keep the connection state honest
    const liveEl = $("live");
    if (liveEl) liveEl.hidden = true;
  }
})();
