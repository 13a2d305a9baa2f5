// The sandbox page: a small Slack client for the local fake Slack (sandbox/fake_slack.py).
// Plain JS, no build step. State comes from GET /sandbox/state, changes from server-sent events
// (/sandbox/events); what the person does is POSTed to /sandbox/<verb> (sandbox/workspace.py).
"use strict";

// Every shortcode the bot's messages use (tests/test_sandbox_workspace.py checks the sources against it).
const EMOJI = {
  white_check_mark: "✅", warning: "⚠️", raising_hand: "🙋", no_entry_sign: "🚫", no_entry: "⛔",
  wave: "👋", "+1": "👍", "-1": "👎", thumbsup: "👍", thumbsdown: "👎", triangular_flag_on_post: "🚩",
  stopwatch: "⏱️", moneybag: "💰", mega: "📣", large_green_circle: "🟢", red_circle: "🔴",
  hourglass: "⌛", hourglass_flowing_sand: "⏳", calendar: "📅", wastebasket: "🗑️", tada: "🎉",
  third_place_medal: "🥉", second_place_medal: "🥈", first_place_medal: "🥇", speech_balloon: "💬",
  outbox_tray: "📤", inbox_tray: "📥", memo: "📝", home: "🏠", handshake: "🤝", envelope: "✉️",
  boom: "💥", alarm_clock: "⏰", x: "❌", heavy_check_mark: "✔️", eyes: "👀", bulb: "💡",
  books: "📚", book: "📖", pushpin: "📌", link: "🔗", clock3: "🕒", lock: "🔒", star: "⭐",
  rocket: "🚀", fire: "🔥", bell: "🔔", question: "❓", information_source: "ℹ️", smile: "😄",
  slightly_smiling_face: "🙂", pray: "🙏", dog: "🐶", briefcase: "💼", hammer_and_wrench: "🛠️",
  scales: "⚖️", stethoscope: "🩺", pencil2: "✏️", computer: "💻", busts_in_silhouette: "👥",
  octagonal_sign: "🛑", seedling: "🌱", grey_question: "❔",
};
const COLORS = ["#e8912d", "#2bac76", "#4a154b", "#1264a3", "#e01e5a", "#36c5f0", "#9b5de5", "#555"];

let S = null; // the latest state
let me = localStorage.getItem("sandbox-user") || "";
let view = localStorage.getItem("sandbox-view") || "C0TASKS"; // channel id or "home"
let threadTs = null;
// How many violations there were when the person hid the banner; a new one shows it again.
let violationsHidden = Number(localStorage.getItem("sandbox-violations-hidden") || 0);
let resetAsked = false; // "Start over" pressed, before the server reports it resetting
let modalErrors = {};
let shownModal = null;

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const unslack = (s) => String(s ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

async function post(verb, body) {
  const r = await fetch(`/sandbox/${verb}`, { method: "POST", body: JSON.stringify({ user: me, ...body }) });
  return r.json();
}

async function refresh() {
  const r = await fetch(`/sandbox/state?user=${encodeURIComponent(me)}`);
  S = await r.json();
  if (!S.users.find((u) => u.id === me) && S.users.length) {
    me = S.users.find((u) => u.id.startsWith("UCON"))?.id || S.users[0].id;
    localStorage.setItem("sandbox-user", me);
    return refresh();
  }
  render();
}

// ------------------------------------------------------------------ mrkdwn

function user(id) { return S.users.find((u) => u.id === id) || (id === S.bot.id ? S.bot : null); }
function userName(id) { const u = user(id); return u ? (u.real_name || u.name) : id; }
function myTz() { return user(me)?.tz || undefined; }

// How far `tz`'s wall clock is ahead of UTC at the instant `ms` (ms), as Intl knows it.
function tzOffset(ms, tz) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const p = Object.fromEntries(parts.map((x) => [x.type, Number(x.value)]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

// A datetime-local input's "2026-12-05T09:00" has no timezone: Slack reads it in the viewer's own.
function wallToEpoch(value) {
  const [y, mo, d, h, mi] = value.split(/[-T:]/).map(Number);
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  const guess = wall - tzOffset(wall, myTz());
  return Math.floor((wall - tzOffset(guess, myTz())) / 1000); // the offset at the instant itself (DST)
}

function epochToWall(epoch) {
  const ms = epoch * 1000;
  return new Date(ms + tzOffset(ms, myTz())).toISOString().slice(0, 16);
}

function ordinal(n) { const s = ["th", "st", "nd", "rd"], v = n % 100; return n + (s[(v - 20) % 10] || s[v] || s[0]); }

function slackDate(epoch, format, link, fallback) {
  const d = new Date(epoch * 1000);
  const tz = myTz();
  const part = (opts) => new Intl.DateTimeFormat("en-US", { timeZone: tz, ...opts }).format(d);
  const ymd = (x) => new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(x);
  const day = ordinal(Number(part({ day: "numeric" })));
  const date = `${part({ month: "long" })} ${day}, ${part({ year: "numeric" })}`;
  const short = `${part({ month: "short" })} ${part({ day: "numeric" })}, ${part({ year: "numeric" })}`;
  const long = `${part({ weekday: "long" })}, ${date}`;
  const rel = (plain) => {
    const today = ymd(new Date()), that = ymd(d);
    const other = (days) => ymd(new Date(Date.now() + days * 864e5));
    if (that === today) return "today";
    if (that === other(1)) return "tomorrow";
    if (that === other(-1)) return "yesterday";
    return plain;
  };
  const mins = Math.round((Date.now() - d) / 60000);
  const ago = Math.abs(mins) < 60 ? `${Math.abs(mins)} minutes` : Math.abs(mins) < 2880 ? `${Math.round(Math.abs(mins) / 60)} hours` : `${Math.round(Math.abs(mins) / 1440)} days`;
  const tokens = {
    date_num: ymd(d), date, date_short: short, date_long: long,
    date_pretty: rel(date), date_short_pretty: rel(short), date_long_pretty: rel(long),
    time: part({ hour: "numeric", minute: "2-digit" }), time_secs: part({ hour: "numeric", minute: "2-digit", second: "2-digit" }),
    ago: mins >= 0 ? `${ago} ago` : `in ${ago}`,
  };
  const text = format.replace(/\{(\w+)\}/g, (m, k) => tokens[k] ?? m);
  const title = `${fallback} · shown in your timezone (${tz})`;
  const inner = `<span class="date" title="${esc(title)}">${esc(text)}</span>`;
  return link ? `<a href="${esc(link)}" target="_blank" rel="noopener">${inner}</a>` : inner;
}

function token(raw) {
  const [body, label] = (() => { const i = raw.indexOf("|"); return i < 0 ? [raw, null] : [raw.slice(0, i), raw.slice(i + 1)]; })();
  if (body.startsWith("@")) return `<span class="mention">@${esc(label || userName(body.slice(1)))}</span>`;
  if (body.startsWith("#")) {
    const c = S.channels.find((x) => x.id === body.slice(1));
    return `<span class="mention">#${esc(label || (c ? c.name : body.slice(1)))}</span>`;
  }
  if (body.startsWith("!date^")) {
    const [, epoch, format, link] = body.split("^");
    return slackDate(Number(epoch), format || "{date}", link, label || "");
  }
  if (body.startsWith("!")) return `<span class="mention">@${esc(label || body.slice(1).split("^")[0])}</span>`;
  const url = unslack(body);
  if (!/^(https?:|mailto:)/.test(url)) return esc(`<${raw}>`);
  return `<a href="${esc(url)}" target="_blank" rel="noopener">${esc(unslack(label || body))}</a>`;
}

function emoji(text) {
  return text.replace(/:([a-z0-9_+\-]+):/g, (m, name) => EMOJI[name] || m);
}

function mrkdwn(text) {
  const stash = [];
  const keep = (html) => { stash.push(html); return `\u0000${stash.length - 1}\u0000`; };
  let t = String(text ?? "");
  t = t.replace(/```([\s\S]*?)```/g, (m, code) => keep(`<pre>${esc(unslack(code))}</pre>`));
  t = t.replace(/`([^`\n]+)`/g, (m, code) => keep(`<code>${esc(unslack(code))}</code>`));
  t = t.replace(/<([^<>\n]+)>/g, (m, raw) => keep(token(raw)));
  t = esc(unslack(t));
  t = t.replace(/(^|[\s(])\*([^*\n]+)\*(?=$|[\s).,!?:;])/g, "$1<b>$2</b>");
  t = t.replace(/(^|[\s(])_([^_\n]+)_(?=$|[\s).,!?:;])/g, "$1<i>$2</i>");
  t = t.replace(/(^|[\s(])~([^~\n]+)~(?=$|[\s).,!?:;])/g, "$1<s>$2</s>");
  t = emoji(t);
  t = t.split("\n").map((line) => line.startsWith("&gt;") ? `<blockquote>${line.slice(4).replace(/^ /, "") || "&nbsp;"}</blockquote>` : line).join("\n");
  t = t.replace(/\n/g, "<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
  return t.replace(/\u0000(\d+)\u0000/g, (m, i) => stash[Number(i)]);
}

function textObj(obj) {
  if (!obj) return "";
  if (obj.type === "plain_text") return obj.emoji === false ? esc(obj.text) : emoji(esc(obj.text));
  return mrkdwn(obj.text);
}

// ------------------------------------------------------------------ Block Kit

function richText(el) {
  const inline = (e) => {
    let h;
    if (e.type === "text") h = esc(e.text).replace(/\n/g, "<br>");
    else if (e.type === "link") h = `<a href="${esc(e.url)}" target="_blank" rel="noopener">${esc(e.text || e.url)}</a>`;
    else if (e.type === "user") h = `<span class="mention">@${esc(userName(e.user_id))}</span>`;
    else if (e.type === "channel") h = `<span class="mention">#${esc(S.channels.find((c) => c.id === e.channel_id)?.name || e.channel_id)}</span>`;
    else if (e.type === "emoji") h = EMOJI[e.name] || `:${esc(e.name)}:`;
    else if (e.type === "date") h = slackDate(e.timestamp, e.format, e.url, e.fallback || "");
    else if (e.type === "broadcast") h = `<span class="mention">@${esc(e.range)}</span>`;
    else h = esc(e.text || "");
    const s = e.style || {};
    if (s.code) h = `<code>${h}</code>`;
    if (s.bold) h = `<b>${h}</b>`;
    if (s.italic) h = `<i>${h}</i>`;
    if (s.strike) h = `<s>${h}</s>`;
    return h;
  };
  const part = (p) => {
    const inner = (p.elements || []).map((x) => (x.type && x.type.startsWith("rich_text_") ? part(x) : inline(x))).join("");
    if (p.type === "rich_text_list") {
      const tag = p.style === "ordered" ? "ol" : "ul";
      return `<${tag}>${(p.elements || []).map((x) => `<li>${(x.elements || []).map(inline).join("")}</li>`).join("")}</${tag}>`;
    }
    if (p.type === "rich_text_quote") return `<blockquote>${inner}</blockquote>`;
    if (p.type === "rich_text_preformatted") return `<pre>${inner}</pre>`;
    return `<div>${inner}</div>`;
  };
  return (el.elements || []).map(part).join("");
}

// An interactive element; `ctx` says where it lives (message, ephemeral, home, modal).
function element(el, ctx, blockId) {
  const data = `data-ctx="${ctx.key}" data-block="${esc(blockId || "")}" data-action="${esc(el.action_id || "")}"`;
  const opts = (list, selected) => (list || []).map((o, i) => `<option value="${i}" ${selected && selected.value === o.value ? "selected" : ""}>${esc(o.text.text)}</option>`).join("");
  switch (el.type) {
    case "button": {
      const cls = el.style === "primary" ? "primary" : el.style === "danger" ? "danger" : "";
      return `<button type="button" class="btn ${cls}" ${data} data-kind="button" data-testid="button-${esc(el.text.text)}">${textObj(el.text)}</button>`;
    }
    case "static_select": case "overflow": {
      const first = el.type === "overflow" ? "⋯" : esc(el.placeholder?.text || "Select");
      return `<select ${data} data-kind="${el.type}"><option value="">${first}</option>${opts(el.options, el.initial_option)}</select>`;
    }
    case "datepicker":
      return `<input type="date" ${data} data-kind="datepicker" value="${esc(el.initial_date || "")}">`;
    case "timepicker":
      return `<input type="time" ${data} data-kind="timepicker" value="${esc(el.initial_time || "")}">`;
    case "users_select": case "conversations_select": case "channels_select":
      return `<select ${data} data-kind="${el.type}"><option value="">${esc(el.placeholder?.text || "Select")}</option>${pickList(el.type).map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join("")}</select>`;
    case "image":
      return `<span class="image-alt">🖼 ${esc(el.alt_text)}</span>`;
    default:
      return `<span class="image-alt">[${esc(el.type)}]</span>`;
  }
}

function pickList(type) {
  if (type.includes("users")) return S.users.map((u) => [u.id, u.real_name || u.name]);
  return S.channels.map((c) => [c.id, `#${c.name}`]);
}

function blocks(list, ctx) {
  return (list || []).map((b) => `<div class="block" data-block-id="${esc(b.block_id || "")}">${block(b, ctx)}</div>`).join("");
}

function block(b, ctx) {
  switch (b.type) {
    case "header": return `<div class="block-header">${textObj(b.text)}</div>`;
    case "section": {
      const text = b.text ? `<div>${textObj(b.text)}</div>` : "";
      const fields = b.fields ? `<div class="fields">${b.fields.map((f) => `<div>${textObj(f)}</div>`).join("")}</div>` : "";
      const acc = b.accessory ? `<div class="accessory">${element(b.accessory, ctx, b.block_id)}</div>` : "";
      return `<div class="section"><div>${text}${fields}</div>${acc}</div>`;
    }
    case "context": return `<div class="context">${(b.elements || []).map((e) => (e.type === "image" ? element(e, ctx) : `<span>${textObj(e)}</span>`)).join("")}</div>`;
    case "divider": return `<hr class="divider">`;
    case "actions": return `<div class="actions">${(b.elements || []).map((e) => element(e, ctx, b.block_id)).join("")}</div>`;
    case "image": return `<span class="image-alt">🖼 ${esc(b.alt_text)}</span>`;
    case "rich_text": return richText(b);
    case "input": return input(b);
    default: return `<span class="image-alt">[${esc(b.type)} block]</span>`;
  }
}

// ------------------------------------------------------------------ modal inputs

function input(b) {
  const el = b.element || {};
  const id = `in-${b.block_id}`;
  const attrs = `id="${esc(id)}" data-input="${esc(b.block_id)}" data-action="${esc(el.action_id)}" data-kind="${esc(el.type)}" name="${esc(b.block_id)}"`;
  const ph = esc(el.placeholder?.text || "");
  let field;
  const options = (el.options || []);
  const initial = new Set((el.initial_options || []).map((o) => o.value).concat(el.initial_option ? [el.initial_option.value] : []));
  switch (el.type) {
    case "plain_text_input":
      field = el.multiline
        ? `<textarea ${attrs} rows="4" placeholder="${ph}" ${el.max_length ? `maxlength="${el.max_length}"` : ""}>${esc(el.initial_value || "")}</textarea>`
        : `<input type="text" ${attrs} placeholder="${ph}" value="${esc(el.initial_value || "")}" ${el.max_length ? `maxlength="${el.max_length}"` : ""}>`;
      break;
    case "email_text_input": case "url_text_input":
      field = `<input type="text" ${attrs} placeholder="${ph}" value="${esc(el.initial_value || "")}">`; break;
    case "number_input":
      field = `<input type="number" step="${el.is_decimal_allowed ? "any" : "1"}" ${attrs} placeholder="${ph}" value="${esc(el.initial_value || "")}">`; break;
    case "static_select": case "multi_static_select":
      field = `<select ${attrs} ${el.type.startsWith("multi") ? "multiple" : ""}><option value="">${ph || "Select an option"}</option>${options.map((o, i) => `<option value="${i}" ${initial.has(o.value) ? "selected" : ""}>${esc(o.text.text)}</option>`).join("")}</select>`; break;
    case "users_select": case "multi_users_select": case "conversations_select": case "multi_conversations_select": case "channels_select": case "multi_channels_select": {
      const init = new Set([].concat(el.initial_user || el.initial_conversation || el.initial_channel || el.initial_users || el.initial_conversations || el.initial_channels || []));
      field = `<select ${attrs} ${el.type.startsWith("multi") ? "multiple" : ""}><option value="">${ph || "Select"}</option>${pickList(el.type).map(([v, t]) => `<option value="${esc(v)}" ${init.has(v) ? "selected" : ""}>${esc(t)}</option>`).join("")}</select>`; break;
    }
    case "checkboxes": case "radio_buttons": {
      const type = el.type === "checkboxes" ? "checkbox" : "radio";
      field = `<div ${attrs}>${options.map((o, i) => `<label class="choice"><input type="${type}" name="${esc(b.block_id)}" value="${i}" ${initial.has(o.value) ? "checked" : ""}> ${textObj(o.text)}${o.description ? ` <span class="hint">${textObj(o.description)}</span>` : ""}</label>`).join("")}</div>`; break;
    }
    case "datepicker":
      field = `<input type="date" ${attrs} value="${esc(el.initial_date || "")}">`; break;
    case "timepicker":
      field = `<input type="time" ${attrs} value="${esc(el.initial_time || "")}">`; break;
    case "datetimepicker": {
      const v = el.initial_date_time ? epochToWall(el.initial_date_time) : "";
      field = `<input type="datetime-local" ${attrs} value="${v}">`; break;
    }
    default:
      field = `<span class="image-alt">[${esc(el.type)}]</span>`;
  }
  const err = modalErrors[b.block_id];
  return `<div class="input-block ${err ? "has-error" : ""}"><label class="label" for="${esc(id)}">${textObj(b.label)}${b.optional ? ' <span class="optional">(optional)</span>' : ""}</label>${field}${b.hint ? `<div class="hint">${textObj(b.hint)}</div>` : ""}${err ? `<div class="field-error" data-testid="error-${esc(b.block_id)}">${esc(err)}</div>` : ""}</div>`;
}

// The Slack-shaped state of every input in the modal (view.state.values).
function modalValues(root, view) {
  const values = {};
  const byBlock = Object.fromEntries((view.blocks || []).filter((b) => b.element).map((b) => [b.block_id, b.element]));
  root.querySelectorAll("[data-input]").forEach((node) => {
    const el = byBlock[node.dataset.input];
    if (!el) return;
    const opt = (i) => el.options[Number(i)];
    let v = { type: el.type };
    switch (el.type) {
      case "plain_text_input": case "email_text_input": case "url_text_input": case "number_input":
        v.value = node.value === "" ? null : node.value; break;
      case "static_select": v.selected_option = node.value === "" ? null : opt(node.value); break;
      case "multi_static_select": v.selected_options = [...node.selectedOptions].filter((o) => o.value !== "").map((o) => opt(o.value)); break;
      case "users_select": v.selected_user = node.value || null; break;
      case "multi_users_select": v.selected_users = [...node.selectedOptions].map((o) => o.value).filter(Boolean); break;
      case "conversations_select": v.selected_conversation = node.value || null; break;
      case "multi_conversations_select": v.selected_conversations = [...node.selectedOptions].map((o) => o.value).filter(Boolean); break;
      case "channels_select": v.selected_channel = node.value || null; break;
      case "multi_channels_select": v.selected_channels = [...node.selectedOptions].map((o) => o.value).filter(Boolean); break;
      case "checkboxes": v.selected_options = [...node.querySelectorAll("input:checked")].map((i) => opt(i.value)); break;
      case "radio_buttons": { const c = node.querySelector("input:checked"); v.selected_option = c ? opt(c.value) : null; break; }
      case "datepicker": v.selected_date = node.value || null; break;
      case "timepicker": v.selected_time = node.value || null; v.timezone = myTz(); break;
      case "datetimepicker": v.selected_date_time = node.value ? wallToEpoch(node.value) : null; break;
      default: v = null;
    }
    if (v) values[node.dataset.input] = { [node.dataset.action]: v };
  });
  return values;
}

// ------------------------------------------------------------------ rendering

const contexts = {}; // ctx key -> {where, channel, message, view_id}
let ctxSeq = 0;
function ctxFor(c) { const key = `c${++ctxSeq}`; contexts[key] = c; return { key }; }

function avatar(id) {
  const u = user(id);
  const n = [...(id || "?")].reduce((a, ch) => a + ch.charCodeAt(0), 0);
  const letter = id === "USLACKBOT" ? "S" : (u?.real_name || u?.name || "?")[0].toUpperCase();
  return `<div class="avatar" style="background:${id === S.bot.id ? "#1d3557" : COLORS[n % COLORS.length]}">${esc(letter)}</div>`;
}

function when(ts) {
  return new Intl.DateTimeFormat("en-US", { timeZone: myTz(), hour: "numeric", minute: "2-digit" }).format(new Date(Number(ts) * 1000));
}

function messageHtml(m, channel, replies, inThread) {
  const ctx = ctxFor({ where: m.is_ephemeral ? "ephemeral" : "message", channel, message: m });
  const isBot = m.user === S.bot.id || m.bot_id;
  const name = m.user === "USLACKBOT" ? "Slackbot" : isBot ? "crewcall" : userName(m.user);
  const body = m.blocks && m.blocks.length ? blocks(m.blocks, ctx) : `<div>${mrkdwn(m.text)}</div>`;
  const eph = m.is_ephemeral ? `<div class="only-you">👁 Only visible to you<button type="button" class="link-button" data-dismiss="${esc(m.ts)}">Dismiss</button></div>` : "";
  const edited = m.edited ? ' <span class="edited">(edited)</span>' : "";
  const rep = replies ? `<button type="button" class="replies" data-thread="${esc(m.ts)}">${replies} ${replies === 1 ? "reply" : "replies"}</button>` : "";
  const start = inThread || m.is_ephemeral ? "" : `<div class="msg-actions"><button type="button" class="btn" data-thread="${esc(m.ts)}" data-testid="reply-in-thread">💬 Reply in thread</button></div>`;
  return `<div class="msg ${m.is_ephemeral ? "ephemeral" : ""}" data-ts="${esc(m.ts)}" data-testid="message">${avatar(m.user)}<div class="body">${eph}<span class="who">${esc(name)}</span>${isBot ? '<span class="app-tag">APP</span>' : ""}<span class="when">${when(m.ts)}</span>${edited}${body}${rep}${start}</div></div>`;
}

function channelMessages(channel) {
  const all = (S.messages[channel] || []).concat(S.ephemerals.filter((e) => e.channel === channel));
  return all.sort((a, b) => Number(a.ts) - Number(b.ts));
}

function render() {
  for (const k of Object.keys(contexts)) delete contexts[k];
  renderViolations();
  if (S.resetting) resetAsked = false; // the server says so from here on
  $("resetting").hidden = !(S.resetting || resetAsked);
  // user switcher
  const sel = $("me");
  sel.innerHTML = S.users.map((u) => `<option value="${esc(u.id)}" ${u.id === me ? "selected" : ""}>${esc(u.real_name || u.name)}</option>`).join("");
  $("me-about").textContent = S.users.find((u) => u.id === me)?.about || "";
  $("channels").innerHTML = S.channels.map((c) => `<li><a href="#" data-nav="${c.id}" class="${view === c.id ? "active" : ""}"># ${esc(c.name)}</a></li>`).join("");
  $("nav-home").classList.toggle("active", view === "home");
  $("nav-dm").classList.toggle("active", view === S.dm);
  $("try").innerHTML = S.try_this.map((t) => `<li>${mrkdwn(t)}</li>`).join("");
  $("reset").hidden = !S.can_reset;
  $("limits").hidden = !S.rate_limited;
  $("limits").textContent = `⏳ ${S.rate_limited} call(s) rate-limited: answered 429 with Retry-After, as Slack would`;
  if (view === "dm") view = S.dm;
  if (view.startsWith("D") && view !== S.dm) view = S.dm;
  // main pane
  const home = view === "home";
  $("home").hidden = !home;
  $("messages").hidden = home;
  $("composer").hidden = home;
  if (home) {
    $("title").textContent = "crewcall · Home";
    $("home").innerHTML = S.home ? blocks(S.home.blocks, ctxFor({ where: "home", view_id: S.home.id })) : `<div class="empty">Loading your Home tab…</div>`;
  } else {
    const c = S.channels.find((x) => x.id === view);
    $("title").textContent = c ? `#${c.name}` : "crewcall · Messages";
    const list = channelMessages(view);
    const top = list.filter((m) => !m.thread_ts || m.thread_ts === m.ts);
    const counts = {};
    list.forEach((m) => { if (m.thread_ts && m.thread_ts !== m.ts) counts[m.thread_ts] = (counts[m.thread_ts] || 0) + 1; });
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    box.innerHTML = top.length ? top.map((m) => messageHtml(m, view, counts[m.ts])).join("") : `<div class="empty">No messages yet.</div>`;
    if (atBottom || !box.dataset.seen || box.dataset.seen !== view) { box.scrollTop = box.scrollHeight; box.dataset.seen = view; }
  }
  renderThread();
  renderModal();
}

// The banner of calls Slack would refuse: hidden to a one-line count on request (they stay recorded).
function renderViolations() {
  const v = $("violations");
  const n = S.violations.length;
  if (violationsHidden > n) { // Start over cleared them: the next one shows again
    violationsHidden = 0;
    localStorage.setItem("sandbox-violations-hidden", "0");
  }
  if (!n) { v.hidden = true; return; }
  const collapsed = violationsHidden >= n;
  v.hidden = false;
  v.classList.toggle("collapsed", collapsed);
  const list = collapsed ? "" : `<ul>${S.violations.slice(-20).map((x) => `<li>${esc(x.method)}: ${esc(x.rule)}</li>`).join("")}</ul>`;
  v.innerHTML = `<div class="violations-head"><b>⚠ ${n} call(s) Slack would refuse or punish</b><button type="button" class="link-button" id="violations-toggle" data-testid="violations-toggle">${collapsed ? "Show" : "Hide"}</button></div>${list}`;
}

function renderThread() {
  const pane = $("thread");
  if (!threadTs || view === "home") { pane.hidden = true; return; }
  const list = channelMessages(view).filter((m) => m.ts === threadTs || m.thread_ts === threadTs);
  pane.hidden = false;
  $("thread-messages").innerHTML = list.map((m) => messageHtml(m, view, 0, true)).join("");
}

function renderModal() {
  const m = S.modal;
  const back = $("modal-backdrop");
  if (!m) { back.hidden = true; shownModal = null; modalErrors = {}; return; }
  const form = $("modal");
  const same = shownModal && shownModal.view === `${m.id}:${m.hash}`;
  if (same && shownModal.errors === JSON.stringify(modalErrors)) return; // keep what the person is typing
  if (!same) modalErrors = {};
  const kept = same ? snapshot(form) : null; // errors came back: keep the values, show the errors
  shownModal = { view: `${m.id}:${m.hash}`, errors: JSON.stringify(modalErrors) };
  const ctx = ctxFor({ where: "modal", view_id: m.id });
  form.innerHTML = `<div class="modal-head"><span>${textObj(m.title)}</span><button type="button" class="link-button" data-close>✕</button></div>
    <div class="modal-body">${blocks(m.blocks, ctx)}</div>
    <div class="modal-foot"><button type="button" class="btn" data-close>${textObj(m.close) || "Cancel"}</button>${m.submit ? `<button type="submit" class="btn primary" data-testid="modal-submit">${textObj(m.submit)}</button>` : ""}</div>`;
  if (kept) kept.forEach(([path, prop, value]) => { const n = form.querySelector(path); if (n) n[prop] = value; });
  back.hidden = false;
}

// What the person entered in the modal, as [selector, property, value] to put back after a redraw.
function snapshot(form) {
  const out = [];
  form.querySelectorAll("[data-input], [data-input] input, [data-input] option").forEach((n) => {
    if (n.tagName === "OPTION") out.push([pathOf(n), "selected", n.selected]);
    else if (n.type === "checkbox" || n.type === "radio") out.push([pathOf(n), "checked", n.checked]);
    else if (n.tagName !== "DIV" && n.tagName !== "SELECT") out.push([pathOf(n), "value", n.value]);
  });
  return out;
}

function pathOf(n) {
  const holder = n.closest("[data-input]");
  const base = `[data-input="${CSS.escape(holder.dataset.input)}"]`;
  if (n === holder) return base;
  return `${base} ${n.tagName.toLowerCase()}[value="${CSS.escape(n.value)}"]`;
}

// ------------------------------------------------------------------ events

document.addEventListener("click", async (ev) => {
  const t = ev.target.closest("[data-nav],[data-kind=button],[data-thread],[data-dismiss],[data-close],#thread-close,#menu,#reset,#violations-toggle");
  if (!t) return;
  ev.preventDefault();
  if (t.id === "menu") { $("sidebar").classList.toggle("open"); return; }
  if (t.id === "violations-toggle") {
    violationsHidden = violationsHidden >= S.violations.length ? 0 : S.violations.length;
    localStorage.setItem("sandbox-violations-hidden", String(violationsHidden));
    renderViolations();
    return;
  }
  if (t.id === "reset") {
    if (!confirm("Start over with a new database?")) return;
    resetAsked = true;
    threadTs = null;
    $("sidebar").classList.remove("open");
    $("resetting").hidden = false;
    if (!(await post("reset", {})).ok) { resetAsked = false; $("resetting").hidden = true; }
    return;
  }
  if (t.id === "thread-close") { threadTs = null; renderThread(); return; }
  if (t.dataset.nav) {
    view = t.dataset.nav === "dm" ? S.dm : t.dataset.nav;
    localStorage.setItem("sandbox-view", view);
    threadTs = null;
    $("sidebar").classList.remove("open");
    if (view === "home") post("home", {});
    render();
    return;
  }
  if (t.dataset.thread) { threadTs = t.dataset.thread; renderThread(); $("thread-text").focus(); return; }
  if (t.dataset.dismiss) { await post("dismiss", { ts: t.dataset.dismiss }); return; }
  if ("close" in t.dataset) { await post("close", { view_id: S.modal?.id }); return; }
  if (t.dataset.kind === "button") {
    const c = contexts[t.dataset.ctx];
    const el = findElement(c, t.dataset.block, t.dataset.action);
    if (el?.confirm && !confirm(`${el.confirm.title?.text || "Are you sure?"}\n\n${unslack(el.confirm.text?.text || "")}`)) return;
    const action = { type: "button", action_id: el?.action_id, block_id: t.dataset.block || undefined, text: el?.text };
    if (el?.value !== undefined) action.value = el.value;
    await act(c, action);
  }
});

document.addEventListener("change", async (ev) => {
  const t = ev.target;
  if (!t.dataset || !t.dataset.ctx || t.dataset.kind === "button") return;
  const c = contexts[t.dataset.ctx];
  const el = findElement(c, t.dataset.block, t.dataset.action);
  if (!el) return;
  const action = { type: el.type, action_id: el.action_id, block_id: t.dataset.block || undefined };
  if (el.type === "static_select" || el.type === "overflow") { if (t.value === "") return; action.selected_option = el.options[Number(t.value)]; }
  else if (el.type === "datepicker") action.selected_date = t.value;
  else if (el.type === "timepicker") action.selected_time = t.value;
  else if (el.type === "users_select") action.selected_user = t.value;
  else if (el.type === "conversations_select") action.selected_conversation = t.value;
  else if (el.type === "channels_select") action.selected_channel = t.value;
  await act(c, action);
});

function findElement(c, blockId, actionId) {
  const list = c.where === "home" ? S.home?.blocks : c.where === "modal" ? S.modal?.blocks : c.message?.blocks;
  for (const b of list || []) {
    if (blockId && b.block_id && b.block_id !== blockId) continue;
    for (const e of [...(b.elements || []), b.accessory, b.element].filter(Boolean)) if (e.action_id === actionId) return e;
  }
  return null;
}

async function act(c, action) {
  const body = { where: c.where, action, channel: c.channel || null, message: c.message || null, view_id: c.view_id };
  if (c.where === "modal" && S.modal) body.values = modalValues($("modal"), S.modal);
  if (c.where === "message" || c.where === "ephemeral") body.channel = c.channel;
  await post("action", body);
}

$("modal").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const m = S.modal;
  const answer = await post("submit", { view_id: m.id, values: modalValues($("modal"), m) });
  if (answer.errors) { modalErrors = answer.errors; renderModal(); }
  else modalErrors = {};
});

$("me").addEventListener("change", (ev) => {
  me = ev.target.value;
  localStorage.setItem("sandbox-user", me);
  threadTs = null; shownModal = null; modalErrors = {};
  refresh().then(() => { if (view === "home") post("home", {}); });
});

// ------------------------------------------------------------------ composer

function setupComposer(formId, textId, thread) {
  const form = $(formId), text = $(textId);
  const suggest = thread ? null : $("suggest");
  let items = [], active = 0;
  const send = async () => {
    const value = text.value;
    if (!value.trim()) return;
    text.value = "";
    if (suggest) suggest.hidden = true;
    await post("send", { channel: view, text: value, thread_ts: thread ? threadTs : null });
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  const pick = (i) => { text.value = items[i].fill; suggest.hidden = true; text.focus(); };
  text.addEventListener("keydown", (ev) => {
    if (suggest && !suggest.hidden && items.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") { ev.preventDefault(); active = (active + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length; show(); return; }
      if (ev.key === "Tab") { ev.preventDefault(); pick(active); return; }
      if (ev.key === "Escape") { suggest.hidden = true; return; }
    }
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); send(); }
  });
  const show = () => {
    suggest.innerHTML = items.map((x, i) => `<li class="${i === active ? "active" : ""}" data-i="${i}">${x.html}</li>`).join("");
    suggest.hidden = !items.length;
  };
  if (suggest) {
    text.addEventListener("input", () => {
      const v = text.value;
      const at = v.match(/(?:^|\s)@([\w.\-]*)$/);
      if (/^\/\S*$/.test(v)) {
        items = S.commands.filter((c) => c.command.startsWith(v)).map((c) => ({ fill: `${c.command} `, html: `<b>${esc(c.command)}</b> <span class="hint">${esc(c.usage_hint)}</span><span class="hint">${esc(c.description)}</span>` }));
      } else if (at) {
        const q = at[1].toLowerCase();
        items = S.users.concat([S.bot]).filter((u) => u.name.toLowerCase().startsWith(q) || (u.real_name || "").toLowerCase().startsWith(q)).slice(0, 8)
          .map((u) => ({ fill: v.slice(0, v.length - at[1].length) + `${u.name} `, html: `<b>@${esc(u.name)}</b> <span class="hint">${esc(u.real_name || "")}</span>` }));
      } else if (/^\/\S+ /.test(v)) {
        const c = S.commands.find((x) => v.startsWith(x.command + " "));
        items = [];
        suggest.innerHTML = c ? `<li class="usage"><b>${esc(c.command)}</b> <span class="hint">${esc(c.usage_hint)}</span></li>` : "";
        suggest.hidden = !c;
        return;
      } else items = [];
      active = 0;
      show();
    });
    suggest.addEventListener("mousedown", (ev) => { const li = ev.target.closest("li[data-i]"); if (li) { ev.preventDefault(); pick(Number(li.dataset.i)); } });
  }
}
setupComposer("composer", "text", false);
setupComposer("thread-composer", "thread-text", true);

// ------------------------------------------------------------------ live updates

function listen() {
  const es = new EventSource("/sandbox/events");
  let last = null;
  es.onmessage = (ev) => { if (ev.data !== last) { last = ev.data; refresh(); } };
  es.onerror = () => { es.close(); setTimeout(listen, 1000); };
}

refresh().then(() => { if (view === "home") post("home", {}); listen(); });
