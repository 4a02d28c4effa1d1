// The qmstats dashboard page: a vanilla ES module, no build step, no request beyond this origin.
//
// Live updates: GET /v1/stream is read with fetch() (not EventSource) so the viewer key travels in the
// Authorization header, never in a URL or an access log. Each "projection" event triggers a refresh of
// the figures, which the API answers with 304 from memory when nothing changed. When the stream is
// unavailable the page polls the dashboard every second with If-None-Match, and keeps retrying the stream.

const TOKEN_KEY = "qmstats.viewerToken";
const LANG_KEY = "qmstats.lang";
const NATION = "000000";
const MUNICIPALITIES = new Set(["11", "12", "31", "50"]);
const HEADLINE = ["dens_busted", "seized_value_yuan", "personnel", "vehicles",
  "cases", "participants", "materials_copies", "batches_sampled"];
const TABLE_COLUMNS = ["dens_busted", "cases", "seized_value_yuan", "personnel", "batches_sampled",
  "participants", "materials_copies"];
const POLL_MS = 1000;          // fallback polling period (a changed figure shows within about a second)
const SAFETY_POLL_MS = 15000;  // also poll while streaming, in case a proxy buffers the stream

const TEXT = {
  zh: {
    title: "全国质量月", live: "实时统计", sse: "实时连接", polling: "每秒刷新", connecting: "连接中",
    updated: "数据更新于", pending: (n) => `另有 ${n} 条新报送正在汇总`,
    justNow: "刚刚", secondsAgo: (n) => `${n} 秒前`, minutesAgo: (n) => `${n} 分钟前`,
    hoursAgo: (n) => `${n} 小时前`, caughtUp: "已是最新",
    window: (a, b) => `活动时间 ${a} 至 ${b}`, open: "进行中", closed: "已结束（数据已冻结）",
    figures: "主要数据", phrase: "概数", exact: "精确值",
    childrenOf: { nation: "各省（区、市）", province: "各地市", prefecture: "各区县", county: "" },
    region: "地区", rank: "序", sortBy: "排序", drillHint: "点击地区查看下级；浏览器“后退”返回上级。",
    countyHint: "区县为最低一级。", noChildren: "暂无下级地区数据。",
    chart: "逐日数据", metric: "指标", today: "今日",
    completeness: "报送情况", reportedOn: "当日已报送", reportedToDate: "累计已报送",
    dayCalendar: (d) => `今日 ${d}（北京时间，活动进行中）`,
    dayLatest: (d) => `最近报送日 ${d}（活动期内有数据的最后一天）`,
    dayNone: "尚无报送", notReported: "未报送", noRegistry: "该年度无区划名录，仅列出已报送地区。",
    passRate: "抽检合格率", overall: "总体", byCategory: "按产品类别", sampled: "抽查", passed: "合格",
    batches: "批次", noSamples: "尚无抽检数据。",
    loginTitle: "输入查看密钥", loginHelp: "请输入管理员发放的 viewer 密钥（qmstats keys create --role viewer）。密钥只保存在本浏览器中。",
    tokenLabel: "密钥", submit: "进入", badKey: "密钥无效或已被吊销。", forgetKey: "更换密钥",
    wrongRole: (role) => `这是 ${role} 密钥，不能查看仪表盘。请使用 viewer（查看）、auditor 或 admin 密钥（qmstats keys create --role viewer）。`,
    reconnecting: "连接中断，正在重连", offline: "无法连接服务器，正在重试",
    serverError: (status) => `服务器出错（${status}），正在重试`,
    dataFrom: (time) => `显示的是 ${time} 的数据`, unreachable: "无法连接服务器。",
    ownLevel: (name) => `${name}本级`, ownLevelHint: "本级：直接报在该地区（不属于下列任何下级）的数据；各行加本级等于合计。",
    footer: "数据来自 qmstats 事件日志，每个数字均可由事件回放复核。概数依 GB/T 15835 表述，精确值见旁注。",
    error: "加载失败：", noCampaign: "尚未开启任何活动。", nation: "全国",
    problems: {
      "not-found": (what) => `找不到${what ? "“" + what + "”" : "所请求的内容"}：活动编号或地区代码可能有误。`,
      "forbidden": "此密钥无权查看这些数据。", "rate-limited": "请求过于频繁，稍后会自动重试。",
      "unavailable": "服务暂时无法连接数据库，正在自动重试。", "invalid-parameter": "地址中的参数有误。",
      "unauthenticated": "密钥无效或已被吊销。",
    },
  },
  en: {
    title: "National Quality Month", live: "live figures", sse: "Live", polling: "Refreshing every second",
    connecting: "Connecting", updated: "Figures updated", pending: (n) => `${n} new reports still being added`,
    justNow: "just now", secondsAgo: (n) => `${n} s ago`,
    minutesAgo: (n) => `${n} min ago`, hoursAgo: (n) => `${n} h ago`, caughtUp: "up to date",
    window: (a, b) => `Campaign window ${a} – ${b}`, open: "in progress", closed: "closed (figures frozen)",
    figures: "Key figures", phrase: "round figure", exact: "exact",
    childrenOf: { nation: "Provinces", province: "Prefectures", prefecture: "Counties", county: "" },
    region: "Region", rank: "#", sortBy: "Sort by", drillHint: "Click a region to drill down; the browser's Back button goes up.",
    countyHint: "Counties are the lowest level.", noChildren: "No figures for lower levels yet.",
    chart: "Daily values", metric: "Metric", today: "Today",
    completeness: "Reporting", reportedOn: "Reported on the day", reportedToDate: "Reported so far",
    dayCalendar: (d) => `Today, ${d} (China Standard Time, campaign in progress)`,
    dayLatest: (d) => `Latest reporting day ${d} (last day of the window with data)`,
    dayNone: "No reports yet", notReported: "Not reported",
    noRegistry: "No region list for this year: only regions that reported are shown.",
    passRate: "Inspection pass rate", overall: "Overall", byCategory: "By product category",
    sampled: "sampled", passed: "passed", batches: "batches", noSamples: "No spot checks reported yet.",
    loginTitle: "Enter a viewer key", loginHelp: "Paste the viewer key issued by the administrator (qmstats keys create --role viewer). It is kept in this browser only.",
    tokenLabel: "Key", submit: "Open dashboard", badKey: "The key is unknown or has been revoked.",
    wrongRole: (role) => `This is a ${role} key: it cannot view the dashboard. Use a viewer, auditor or admin key (qmstats keys create --role viewer).`,
    reconnecting: "Connection lost, reconnecting", offline: "Server unreachable, retrying",
    serverError: (status) => `Server error (${status}), retrying`,
    dataFrom: (time) => `showing figures from ${time}`, unreachable: "The server cannot be reached.",
    ownLevel: (name) => `${name} (own level)`, ownLevelHint: "Own level: reported at this region itself, not in any row above; the rows plus the own level add up to the total.",
    forgetKey: "Change key",
    footer: "Figures come from the qmstats event log; every number can be re-derived by replaying it. Round figures follow GB/T 15835; exact values are shown beside them.",
    error: "Could not load: ", noCampaign: "No campaign has been opened yet.", nation: "China",
    problems: {
      "not-found": (what) => `${what ? "“" + what + "”" : "What was asked for"} was not found: the campaign or region code may be wrong.`,
      "forbidden": "This key may not read these figures.", "rate-limited": "Too many requests; retrying shortly.",
      "unavailable": "The service cannot reach its database right now; retrying.",
      "invalid-parameter": "The address has a parameter that is not valid.",
      "unauthenticated": "The key is unknown or has been revoked.",
    },
  },
};
const UNITS_EN = { "元": "yuan" };

class AuthError extends Error {}             // 401 (unknown or revoked key) and 403 (a key of the wrong role)
class HttpError extends Error {              // any other answer that is not 2xx/304
  constructor(status, message) { super(message); this.status = status; }
}
class NetworkError extends Error {}          // no answer at all: the server is down or unreachable

// A problem+json answer: shown in the page's language from its stable type, never its English detail.
class ProblemError extends HttpError {
  constructor(status, type, subject) {
    super(status, `${status} ${type}`);
    this.slug = String(type || "").replace("urn:qmstats:problem:", "");
    this.subject = subject;
  }
}

const state = {
  lang: initialLanguage(),
  token: localStorage.getItem(TOKEN_KEY) || "",
  campaign: null,          // campaign id from the URL, or the latest campaign
  campaignInfo: null,      // GET /v1/campaigns/{c}
  region: NATION,
  dashboard: null,
  series: null,
  completeness: null,      // overall (latest_day, to_date)
  reporting: null,         // {day, basis, body} for "today"
  chartMetric: "seized_value_yuan",
  sort: { metric: "dens_busted", descending: true },
  transport: "connecting",
  names: new Map([[NATION, null]]),
  labels: null,            // standard category/channel code (or label) → {zh, en}, from GET /v1/catalogue
  lastEventId: "",
  lastOk: null,            // when the server last answered (the figures shown are from then)
  failure: null,           // {kind: "network" | "http", status, since} while requests fail
};
const cache = { etags: new Map(), bodies: new Map() };

// ---- small DOM helpers ----------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[state.lang][key];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function fill(parent, ...children) {
  parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

// ---- numbers: exact values come as integers or decimal strings and are never turned into floats ------

function grouped(value) {
  const [whole, fraction] = String(value).split(".");
  const digits = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return fraction === undefined ? digits : `${digits}.${fraction}`;
}

function unitOf(unit) {
  return state.lang === "zh" ? unit : (UNITS_EN[unit] ?? "");
}

function percent(numerator, denominator) {
  // numerator ÷ denominator as a percentage, half-even to one decimal, like the year-end summary: more
  // decimals only where one would state something false (never "100%" while a batch failed, never "0%"
  // while one passed). Exact integer arithmetic on BigInt, no float rounding.
  const n = BigInt(numerator), d = BigInt(denominator);
  if (d === 0n) return "—";
  for (let places = 1; ; places += 1) {
    const scale = 10n ** BigInt(places);
    const scaled = n * 100n * scale;
    let q = scaled / d;
    const r = scaled % d;
    if (2n * r > d || (2n * r === d && q % 2n === 1n)) q += 1n;
    const full = 100n * scale;
    if ((q === full && n < d) || (q === 0n && n > 0n)) continue;
    const whole = q / scale;
    const fraction = (q % scale).toString().padStart(places, "0").replace(/0+$/, "");
    return `${whole}${fraction ? "." + fraction : ""}%`;
  }
}

function ratioPercent(ratio) {
  // A ratio string the API computed ("0.9337") shown with the same one-decimal precision.
  if (ratio === null || ratio === undefined) return "—";
  const [whole, fraction = ""] = String(ratio).split(".");
  return percent(BigInt(whole + fraction), 10n ** BigInt(fraction.length));
}

function label(figure) {
  if (state.lang === "zh") return figure.label_zh;
  return figure.label_en.charAt(0).toUpperCase() + figure.label_en.slice(1);
}

// ---- standard labels: a category sent as a standard code reads in the page's language ---------------

async function loadLabels() {
  if (state.labels) return;
  try {
    const { body } = await getJSON("/v1/catalogue");
    state.labels = new Map();
    for (const item of [...(body.categories || []), ...(body.channels || [])]) {
      const names = { zh: item.label_zh, en: item.label_en };
      for (const key of [item.code, item.label_zh, item.label_en]) state.labels.set(key, names);
    }
  } catch { /* labels are cosmetic: the category is shown as sent */ }
}

function categoryLabel(value) {
  return state.labels?.get(value)?.[state.lang] ?? value;
}

// ---- regions --------------------------------------------------------------------------------------

function levelOf(code) {
  if (code === NATION) return "nation";
  if (code.endsWith("0000")) return "province";
  if (code.endsWith("00")) return "prefecture";
  return "county";
}

function parentOf(code) {
  const level = levelOf(code);
  if (level === "nation") return null;
  if (level === "province") return NATION;
  if (level === "prefecture") return code.slice(0, 2) + "0000";
  const province = code.slice(0, 2);
  // Counties of the municipalities and province-administered units (XX90ZZ) hang from the province.
  if (MUNICIPALITIES.has(province) || code.slice(2, 4) === "90") return province + "0000";
  return code.slice(0, 4) + "00";
}

function lineage(code) {
  const chain = [];
  for (let c = code; c !== null; c = parentOf(c)) chain.unshift(c);
  return chain;
}

// The provincial-level divisions in English (lower levels have Chinese names only, from the region list).
const PROVINCES_EN = {
  110000: "Beijing", 120000: "Tianjin", 130000: "Hebei", 140000: "Shanxi", 150000: "Inner Mongolia",
  210000: "Liaoning", 220000: "Jilin", 230000: "Heilongjiang", 310000: "Shanghai", 320000: "Jiangsu",
  330000: "Zhejiang", 340000: "Anhui", 350000: "Fujian", 360000: "Jiangxi", 370000: "Shandong",
  410000: "Henan", 420000: "Hubei", 430000: "Hunan", 440000: "Guangdong", 450000: "Guangxi", 460000: "Hainan",
  500000: "Chongqing", 510000: "Sichuan", 520000: "Guizhou", 530000: "Yunnan", 540000: "Tibet",
  610000: "Shaanxi", 620000: "Gansu", 630000: "Qinghai", 640000: "Ningxia", 650000: "Xinjiang",
  710000: "Taiwan", 810000: "Hong Kong", 820000: "Macao",
};

function localName(code, name) {
  return (state.lang === "en" && PROVINCES_EN[code]) || name || code;
}

function regionName(code) {
  if (code === NATION) return t("nation");
  return localName(code, state.names.get(code));
}

// ---- the URL is the state: /campaigns/{c}?region=XXXXXX -------------------------------------------

function readLocation() {
  const match = location.pathname.match(/^\/campaigns\/([^/]+)\/?$/);
  state.campaign = match ? decodeURIComponent(match[1]) : state.campaign;
  const region = new URLSearchParams(location.search).get("region");
  state.region = region && /^\d{6}$/.test(region) ? region : NATION;
}

function regionUrl(region) {
  const query = region === NATION ? "" : `?region=${region}`;
  return `/campaigns/${encodeURIComponent(state.campaign)}${query}`;
}

function drillTo(region) {
  if (region === state.region) return;
  history.pushState({ region }, "", regionUrl(region));
  state.region = region;
  refresh();
}

window.addEventListener("popstate", () => {
  readLocation();
  refresh();
});

// ---- the API --------------------------------------------------------------------------------------

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function getJSON(path) {
  const headers = { Accept: "application/json", ...authHeaders() };
  const etag = cache.etags.get(path);
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch {
    throw new NetworkError(t("unreachable"));
  }
  if (response.status === 304 && cache.bodies.has(path)) return { body: cache.bodies.get(path), changed: false };
  await refuse(response, path);
  const body = await response.json();
  const tag = response.headers.get("ETag");
  if (tag) {
    if (cache.etags.size > 500) { cache.etags.clear(); cache.bodies.clear(); }
    cache.etags.set(path, tag);
    cache.bodies.set(path, body);
  }
  return { body, changed: true };
}

async function refuse(response, path) {
  // Say what is wrong in words a person uses: a bad key, a key of the wrong role, or a server problem.
  if (response.status === 401) throw new AuthError(t("badKey"));
  if (response.ok) return;
  const problem = await response.json().catch(() => null);
  if (response.status === 403 && problem?.key_role) throw new AuthError(t("wrongRole")(problem.key_role));
  throw new ProblemError(response.status, problem?.type, state.campaign);
}

function answered() {
  state.lastOk = new Date();
  state.failure = null;
  renderStatus();
}

function failed(error) {
  const kind = error instanceof NetworkError ? "network" : "http";
  const since = state.failure?.since ?? Date.now();
  state.failure = { kind, status: error.status, since };
  renderStatus();
}

const base = () => `/v1/campaigns/${encodeURIComponent(state.campaign)}`;
const regionQuery = () => (state.region === NATION ? "" : `region=${state.region}`);
const withQuery = (path, ...parts) => {
  const query = parts.filter(Boolean).join("&");
  return query ? `${path}?${query}` : path;
};
const dashboardPath = () => withQuery(`${base()}/dashboard`, regionQuery());

async function chooseCampaign() {
  if (state.campaign) return;
  const { body } = await getJSON("/v1/campaigns");
  const campaigns = body.campaigns || [];
  if (!campaigns.length) throw new Error(t("noCampaign"));
  // The open campaign that started last, else the one that started last.
  const byStart = [...campaigns].sort((a, b) => (a.starts_on < b.starts_on ? 1 : -1));
  state.campaign = (byStart.find((c) => c.status === "open") || byStart[0]).id;
}

function chinaToday() {
  return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

function reportingDay(info, latestDay) {
  const today = chinaToday();
  if (info && info.starts_on <= today && today <= info.ends_on) return { day: today, basis: "calendar" };
  return { day: latestDay, basis: "latest" };
}

// ---- refreshing: coalesced, so a burst of events costs one round of (mostly 304) requests ------------

let running = null;
let again = false;

function refresh() {
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    try {
      do {
        again = false;
        await load();
      } while (again);
      showError(null);
      answered();
      return true;
    } catch (error) {
      if (error instanceof AuthError) showLogin(error.message);
      else {
        hideLogin();  // the key was accepted; what failed is shown in the banner
        showError(error);
        if (error instanceof NetworkError || error instanceof HttpError) failed(error);
      }
      return false;
    } finally {
      running = null;
    }
  })();
  return running;
}

async function load() {
  await chooseCampaign();
  await loadLabels();
  const completenessPath = (...parts) => withQuery(`${base()}/completeness`, regionQuery(), ...parts);
  const [dashboard, series, completeness] = await Promise.all([
    getJSON(dashboardPath()),
    getJSON(withQuery(`${base()}/series`, `metric=${state.chartMetric}`, regionQuery())),
    getJSON(completenessPath()),
  ]);
  // The campaign (window, status) changes only through events, so only when the figures moved.
  if (dashboard.changed || state.campaignInfo?.id !== state.campaign) {
    state.campaignInfo = (await getJSON(base())).body;
  }
  const { day, basis } = reportingDay(state.campaignInfo, completeness.body.latest_day);
  const onDay = day ? (await getJSON(completenessPath(`date=${day}`))).body : null;
  state.dashboard = dashboard.body;
  state.series = series.body;
  state.completeness = completeness.body;
  state.reporting = { day, basis, body: onDay };
  for (const child of state.dashboard.children) if (child.name) state.names.set(child.code, child.name);
  if (state.dashboard.region.name) state.names.set(state.dashboard.region.code, state.dashboard.region.name);
  hideLogin();
  render();
  fillAncestorNames();
}

async function fillAncestorNames() {
  const missing = lineage(state.region).filter((c) => c !== NATION && !state.names.has(c));
  for (const code of missing) {
    const path = withQuery(`${base()}/dashboard`, `region=${parentOf(code)}`);
    try {
      const { body } = await getJSON(path);
      for (const child of body.children) if (child.name) state.names.set(child.code, child.name);
    } catch { /* names are cosmetic: the code is shown instead */ }
  }
  if (missing.length) renderPlace();
}

// ---- live: the SSE stream read with fetch(), polling as the fallback --------------------------------

function setTransport(mode) {
  state.transport = mode;
  document.body.dataset.transport = mode;
  renderStatus();
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // Normalise CRLF, keeping a trailing CR until its LF arrives.
    const tail = buffer.endsWith("\r") ? "\r" : "";
    buffer = buffer.slice(0, buffer.length - tail.length).replace(/\r\n?/g, "\n") + tail;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const message = { event: "message", data: [], id: null };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") message.event = text;
        else if (field === "data") message.data.push(text);
        else if (field === "id") message.id = text;
      }
      if (message.data.length) onEvent(message);
    }
  }
}

let streamController = null;

async function listen() {
  let backoff = 1000;
  for (;;) {
    const controller = new AbortController();
    streamController = controller;
    try {
      const headers = { Accept: "text/event-stream", ...authHeaders() };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const response = await fetch("/v1/stream", { headers, cache: "no-store", signal: controller.signal });
      await refuse(response, "/v1/stream");
      if (!response.body) throw new Error("the stream has no body");
      setTransport("sse");
      backoff = 1000;
      await readEvents(response.body, (message) => {
        if (message.id) state.lastEventId = message.id;
        if (!running) answered();  // the server just spoke: the figures are current
        if (message.event !== "projection") return;
        const { position } = JSON.parse(message.data.join("\n"));
        if (!state.dashboard || position !== state.dashboard.position) refresh();
      });
    } catch (error) {
      if (error instanceof AuthError) {
        showLogin(error.message);
        return;  // login() starts a new stream
      }
    }
    if (streamController !== controller) return;  // replaced by a newer stream (new key)
    // The stream ended (the server shut down, the key was revoked, a proxy cut it): poll at once,
    // which tells a server that is gone from one that is still there.
    lastPoll = 0;
    setTransport("polling");
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 30000);
  }
}

function restartStream() {
  if (streamController) streamController.abort();
  streamController = null;
  setTransport("connecting");
  listen();
}

let lastPoll = 0;

async function poll() {
  const now = Date.now();
  const due = state.transport === "sse" ? SAFETY_POLL_MS : POLL_MS;
  if (now - lastPoll < due || running || !state.campaign || !$("login").hidden) return;
  lastPoll = now;
  try {
    const { changed } = await getJSON(dashboardPath());
    if (changed) refresh();
    else answered();
  } catch (error) {
    if (error instanceof AuthError) showLogin(error.message);
    else failed(error);
  }
}

// ---- rendering ------------------------------------------------------------------------------------

function render() {
  const html = document.documentElement;
  html.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.body.dataset.lang = state.lang;
  document.body.dataset.region = state.region;
  document.body.dataset.state = "ready";
  document.title = `${t("title")} · ${t("live")}`;
  $("lang-toggle").textContent = state.lang === "zh" ? "EN" : "中文";
  $("lang-toggle").lang = state.lang === "zh" ? "en" : "zh-CN";
  $("forget-key").textContent = t("forgetKey");
  $("forget-key").hidden = !state.token;
  $("footer-note").textContent = t("footer");
  if (!state.dashboard) return;
  renderPlace();
  renderFigures();
  renderTable();
  renderChart();
  renderCompleteness();
  renderPassRate();
  renderStatus();
}

function renderPlace() {
  const info = state.campaignInfo;
  $("campaign-title").textContent = state.lang === "zh"
    ? `${info?.id ?? ""}年${t("title")} · ${t("live")}` : `${t("title")} ${info?.id ?? ""} · ${t("live")}`;
  $("theme").textContent = info?.theme ?? "";
  $("campaign-window").textContent = info
    ? `${t("window")(info.starts_on, info.ends_on)} · ${info.status === "open" ? t("open") : t("closed")}` : "";
  const crumbs = $("crumbs");
  const chain = lineage(state.region);
  crumbs.hidden = chain.length < 2;
  crumbs.replaceChildren(...chain.map((code, i) => (i === chain.length - 1
    ? el("span", { class: "crumb current", "aria-current": "page", text: regionName(code) })
    : el("a", { class: "crumb", href: regionUrl(code), "data-region": code, text: regionName(code),
      onclick: (event) => { event.preventDefault(); drillTo(code); } }))));
  $("region-name").textContent = regionName(state.region);
  $("region-name").dataset.region = state.region;
}

function figureCard(metric, figure, size) {
  const unit = unitOf(figure.unit);
  const exact = grouped(figure.value);
  const approximate = figure.phrase_zh !== String(figure.value);
  const long = exact.length > 11 ? " long" : "";
  return el("div", { class: `figure ${size}${long}`, "data-figure": metric, "data-value": figure.value,
    title: `${label(figure)}: ${exact}${unit ? " " + unit : ""}` },
  el("div", { class: "figure-label", text: label(figure) }),
  el("div", { class: "figure-value" },
    el("span", { class: "number", text: exact }),
    unit ? el("span", { class: "unit", text: unit }) : null),
  el("div", { class: "figure-phrase", "data-phrase": figure.phrase_zh },
    el("span", { class: "phrase-tag", text: t("phrase") }),
    el("span", { class: "phrase", lang: "zh-CN", text: `${figure.phrase_zh}${figure.unit}` }),
    approximate ? null : el("span", { class: "phrase-exact", text: "✓" })));
}

function renderFigures() {
  const metrics = state.dashboard.metrics;
  $("figures-title").textContent = t("figures");
  $("figures").replaceChildren($("figures-title"),
    ...HEADLINE.map((m) => figureCard(m, metrics[m], "large")));
  $("more-figures").replaceChildren(...Object.keys(metrics).filter((m) => !HEADLINE.includes(m))
    .map((m) => figureCard(m, metrics[m], "small")));
}

function tableColumns() {
  return TABLE_COLUMNS.includes(state.sort.metric) ? TABLE_COLUMNS : [...TABLE_COLUMNS, state.sort.metric];
}

function sortedChildren() {
  const { metric, descending } = state.sort;
  return [...state.dashboard.children].sort((a, b) => {
    const diff = Number(b.metrics[metric]) - Number(a.metrics[metric]);
    return (descending ? diff : -diff) || a.code.localeCompare(b.code);
  });
}

function renderTable() {
  const level = state.dashboard.region.level;
  const metrics = state.dashboard.metrics;
  $("regions-title").textContent = t("childrenOf")[level] || t("region");
  $("sort-label").textContent = t("sortBy");
  fillMetricSelect($("sort-metric"), state.sort.metric);
  const columns = tableColumns();
  const arrow = state.sort.descending ? " ▼" : " ▲";
  $("regions").querySelector("thead").replaceChildren(el("tr", {},
    el("th", { class: "rank", text: t("rank") }),
    el("th", { class: "name", text: t("region") }),
    ...columns.map((m) => el("th", {
      class: `num sortable${m === state.sort.metric ? " sorted" : ""}`, "data-metric": m, scope: "col",
      "aria-sort": m === state.sort.metric ? (state.sort.descending ? "descending" : "ascending") : "none",
      onclick: () => sortBy(m),
    }, el("span", { text: label(metrics[m]) }),
    el("small", { text: unitOf(metrics[m].unit) + (m === state.sort.metric ? arrow : "") })))));
  const children = sortedChildren();
  // Counties are the lowest level (the municipalities' children are counties already).
  const canDrill = children.some((child) => child.level !== "county");
  const rows = children.map((child, i) => el("tr", {
    "data-region": child.code, class: child.level !== "county" ? "drill" : null,
    tabindex: child.level !== "county" ? 0 : null,
    onclick: child.level !== "county" ? () => drillTo(child.code) : null,
    onkeydown: child.level !== "county" ? (e) => { if (e.key === "Enter") drillTo(child.code); } : null,
  },
  el("td", { class: "rank", text: String(i + 1) }),
  el("td", { class: "name", text: localName(child.code, child.name) }),
  ...columns.map((m) => el("td", { class: `num${m === state.sort.metric ? " sorted" : ""}`, "data-metric": m,
    "data-value": child.metrics[m], text: grouped(child.metrics[m]) }))));
  $("regions").querySelector("tbody").replaceChildren(...rows);
  // 本级: what was reported at this region itself, so that the rows add up to the totals above.
  const own = state.dashboard.own_level;
  let foot = $("regions").querySelector("tfoot");
  if (!foot) foot = $("regions").appendChild(el("tfoot"));
  foot.replaceChildren(...(own ? [el("tr", { class: "own-level", "data-region": own.code, title: t("ownLevelHint") },
    el("td", { class: "rank", text: "" }),
    el("td", { class: "name", text: t("ownLevel")(regionName(own.code)) }),
    ...columns.map((m) => el("td", { class: "num", "data-metric": m, "data-value": own.metrics[m],
      text: grouped(own.metrics[m]) })))] : []));
  $("regions-hint").textContent = !rows.length ? t("noChildren") : canDrill ? t("drillHint") : t("countyHint");
}

function sortBy(metric) {
  state.sort = { metric, descending: state.sort.metric === metric ? !state.sort.descending : true };
  renderTable();
}

function fillMetricSelect(select, chosen) {
  const metrics = state.dashboard.metrics;
  select.replaceChildren(...Object.keys(metrics).map((m) => el("option", {
    value: m, selected: m === chosen, text: `${label(metrics[m])}${metrics[m].unit ? "（" + unitOf(metrics[m].unit) + "）" : ""}`
      .replace("（）", ""),
  })));
}

function niceStep(max, ticks) {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  return step || power * 10;
}

function compact(value) {
  if (state.lang === "zh") {
    if (value >= 1e8) return `${+(value / 1e8).toFixed(2)}亿`;
    if (value >= 1e4) return `${+(value / 1e4).toFixed(2)}万`;
  } else {
    if (value >= 1e9) return `${+(value / 1e9).toFixed(2)}B`;
    if (value >= 1e6) return `${+(value / 1e6).toFixed(2)}M`;
    if (value >= 1e3) return `${+(value / 1e3).toFixed(2)}k`;
  }
  return String(+value.toFixed(2));
}

function renderChart() {
  const series = state.series;
  const figure = state.dashboard.metrics[series.metric];
  $("chart-title").textContent = t("chart");
  $("metric-label").textContent = t("metric");
  fillMetricSelect($("chart-metric"), series.metric);
  const width = 720, height = 260, left = 64, right = 12, top = 16, bottom = 36;
  const days = series.days;
  // Plotting only: heights may use floats; the exact value is in each bar's tooltip and data-value.
  const values = days.map((d) => Number(d.value));
  const step = niceStep(Math.max(4, ...values), 4);
  const top_ = Math.max(step, Math.ceil(Math.max(...values) / step) * step);
  const plotW = width - left - right, plotH = height - top - bottom;
  const band = plotW / Math.max(1, days.length);
  const y = (v) => top + plotH - (v / top_) * plotH;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "daily",
    "data-metric": series.metric, "aria-label": `${label(figure)} · ${t("chart")}` });
  for (let v = 0; v <= top_ + step / 2; v += step) {
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: v ? "grid" : "axis" }),
      svg("text", { x: left - 8, y: y(v) + 4, class: "tick y" }, document.createTextNode(compact(v))));
  }
  const marked = state.reporting?.day;
  days.forEach((d, i) => {
    const h = Math.max(0, plotH - (y(values[i]) - top));
    const x = left + i * band;
    const bar = svg("rect", { x: x + band * 0.15, y: y(values[i]), width: band * 0.7, height: h,
      class: d.date === marked ? "bar today" : "bar", "data-date": d.date, "data-value": d.value });
    bar.append(svg("title", {}, document.createTextNode(
      `${d.date}  ${grouped(d.value)} ${unitOf(series.unit)}`)));
    chart.append(bar);
    const dayOfMonth = Number(d.date.slice(8, 10));
    if (i === 0 || dayOfMonth % 5 === 0 || d.date === marked) {
      chart.append(svg("text", { x: x + band / 2, y: height - bottom + 18,
        class: d.date === marked ? "tick x today" : "tick x" },
      document.createTextNode(`${Number(d.date.slice(5, 7))}/${dayOfMonth}`)));
    }
  });
  $("chart").replaceChildren(el("p", { class: "chart-caption" },
    el("strong", { text: label(figure) }), ` · ${unitOf(series.unit) || ""}`), chart);
}

function chip(region, status) {
  return el("li", { class: `chip ${status}`, "data-region": region.code, "data-status": status,
    title: `${localName(region.code, region.name)} · ${region.code}`,
    text: state.lang === "en" ? localName(region.code, region.name) : shortName(region.name || region.code) });
}

function shortName(name) {
  return name.replace(/(维吾尔|壮族|回族)?自治区$|特别行政区$|省$|市$/u, "") || name;
}

function renderCompleteness() {
  const { day, basis, body } = state.reporting;
  const overall = state.completeness;
  const box = $("completeness");
  box.dataset.day = day || "";
  box.dataset.basis = basis;
  $("completeness-title").textContent = t("completeness");
  $("completeness-day").textContent = day ? (basis === "calendar" ? t("dayCalendar") : t("dayLatest"))(day)
    : t("dayNone");
  const onDay = body?.on_date;
  const reportedToday = new Set((onDay?.reported || []).map((r) => r.code));
  const reportedEver = new Set(overall.to_date.reported.map((r) => r.code));
  const everyone = [...overall.to_date.reported, ...overall.to_date.not_reported]
    .sort((a, b) => a.code.localeCompare(b.code));
  box.dataset.reported = String(reportedToday.size);
  const expected = overall.expected;
  const counter = (n, labelText, key) => el("div", { class: "count", "data-count": key },
    el("span", { class: "count-value", text: expected ? `${n} / ${expected}` : String(n) }),
    el("span", { class: "count-label", text: labelText }));
  fill($("completeness-body"),
    el("div", { class: "counts" },
      counter(reportedToday.size, t("reportedOn"), "day"),
      counter(reportedEver.size, t("reportedToDate"), "to-date")),
    el("ul", { class: "chips" }, ...everyone.map((r) => chip(r,
      reportedToday.has(r.code) ? "today" : reportedEver.has(r.code) ? "earlier" : "missing"))),
    el("ul", { class: "legend" },
      el("li", { class: "chip today", text: t("reportedOn") }),
      el("li", { class: "chip earlier", text: t("reportedToDate") }),
      el("li", { class: "chip missing", text: t("notReported") })),
    expected === null ? el("p", { class: "hint", text: t("noRegistry") }) : null);
}

function renderPassRate() {
  const rate = state.dashboard.pass_rate;
  const body = $("pass-rate-body");
  $("pass-rate-title").textContent = t("passRate");
  if (!rate.sampled) {
    body.replaceChildren(el("p", { id: "pass-rate", class: "hint", "data-value": "", text: t("noSamples") }));
    return;
  }
  const bar = (name, ratio, key) => {
    const fill = el("span", { class: "fill" });
    fill.style.width = ratio === null ? "0" : `${Math.min(100, Number(ratio) * 100)}%`;
    return el("li", { class: "rate", "data-category": key, "data-value": ratio ?? "" },
      el("span", { class: "rate-name", text: name }),
      el("span", { class: "rate-bar" }, fill),
      el("span", { class: "rate-value", text: ratioPercent(ratio) }));
  };
  const categories = Object.entries(rate.by_category);
  fill(body,
    el("div", { class: "overall" },
      el("span", { id: "pass-rate", class: "overall-value", "data-value": rate.overall, text: percent(rate.passed, rate.sampled) }),
      el("span", { class: "overall-detail",
        text: `${t("overall")} · ${t("passed")} ${grouped(rate.passed)} / ${t("sampled")} ${grouped(rate.sampled)} ${t("batches")}` })),
    categories.length ? el("h4", { text: t("byCategory") }) : null,
    el("ul", { class: "rates" }, ...categories.map(([name, ratio]) => bar(categoryLabel(name), ratio, name))));
}

function ago(date) {
  const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (seconds < 3) return t("justNow");
  if (seconds < 120) return t("secondsAgo")(seconds);
  if (seconds < 7200) return t("minutesAgo")(Math.round(seconds / 60));
  return t("hoursAgo")(Math.round(seconds / 3600));
}

const OFFLINE_MS = 10000;  // failing this long: say the server is unreachable, not just reconnecting

function linkState() {
  const failure = state.failure;
  if (!failure) return "ok";
  if (failure.kind === "http") return "server-error";
  return Date.now() - failure.since > OFFLINE_MS ? "offline" : "reconnecting";
}

function clock(date) {
  return date.toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false,
    timeZone: "Asia/Shanghai" });
}

function renderStatus() {
  // Never "up to date" unless the server has just answered: while requests fail the header says so,
  // and says when the figures on screen are from.
  const link = linkState();
  document.body.dataset.link = link;
  const failure = state.failure;
  $("transport").textContent = link === "ok" ? t(state.transport)
    : link === "server-error" ? t("serverError")(failure.status) : t(link);
  const d = state.dashboard;
  if (!d) return;
  document.body.dataset.position = String(d.position);
  const parts = [];
  if (link !== "ok") {
    if (state.lastOk) parts.push(t("dataFrom")(clock(state.lastOk)));
  } else {
    if (d.updated_at) parts.push(`${t("updated")} ${ago(new Date(d.updated_at))}`);
    parts.push(d.lag_events ? t("pending")(d.lag_events) : t("caughtUp"));
  }
  $("freshness").textContent = parts.join(" · ");
  $("freshness").dataset.position = String(d.position);
}

// ---- errors and the key form ----------------------------------------------------------------------

function showError(error) {
  state.error = error;  // kept, so switching the language redraws it
  let banner = $("error-banner");
  if (!error) {
    banner?.remove();
    return;
  }
  if (!banner) {
    banner = el("p", { id: "error-banner", class: "error-banner", role: "alert" });
    $("main").prepend(banner);
  }
  banner.textContent = `${t("error")}${describeError(error)}`;
}

function describeError(error) {
  if (error instanceof ProblemError) {
    const known = t("problems")[error.slug];
    if (typeof known === "function") return known(error.subject);
    return known || t("serverError")(error.status);
  }
  if (error instanceof TypeError) return t("offline");  // fetch() could not reach the server
  return error.message;  // the page's own messages are already in its language
}

function showLogin(message) {
  document.body.dataset.state = "login";
  $("login").hidden = false;
  $("login-title").textContent = t("loginTitle");
  $("login-help").textContent = t("loginHelp");
  $("token-label").textContent = t("tokenLabel");
  $("login-submit").textContent = t("submit");
  $("login-error").textContent = state.token ? message : "";
  $("token").focus();
}

function hideLogin() {
  $("login").hidden = true;
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  localStorage.setItem(TOKEN_KEY, state.token);
  cache.etags.clear();
  cache.bodies.clear();
  refresh().then((ok) => { if (ok) restartStream(); });
});

$("forget-key").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  state.token = "";
  if (streamController) streamController.abort();
  showLogin("");
});

$("lang-toggle").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, state.lang);
  render();
  if (state.error) showError(state.error);
  if (!$("login").hidden) showLogin($("login-error").textContent);
});

$("sort-metric").addEventListener("change", (event) => {
  state.sort = { metric: event.target.value, descending: true };
  renderTable();
});

$("chart-metric").addEventListener("change", (event) => {
  state.chartMetric = event.target.value;
  refresh();
});

function initialLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved === "zh" || saved === "en") return saved;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

// ---- start ----------------------------------------------------------------------------------------

readLocation();
render();
refresh().then((ok) => {
  if (ok || $("login").hidden) listen();  // after a failed login, the key form starts the stream
});
setInterval(() => {
  poll();
  renderStatus();
}, 250);
