// /auctions/{id}: one listing's auction, built from its event stream (the stream starts at the
// listing's first event, so the page needs no other source), then the loan once it is funded.
import { drawBook } from "./chart.js";
import {
  Unauthorized, api, apiKey, countdown, el, keyBar, money, rate, readStream, shortId,
} from "./common.js";

const LATEST = 40;
const RETRY_MS = 1500;
const listingId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const $ = (id) => document.getElementById(id);

let state;
let abort = null;

const bar = keyBar(() => start());

function fresh() {
  return { listing: null, bids: new Map(), events: [], lastId: null, closed: false, loan: null };
}

function say(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

async function start() {
  if (abort) abort.abort();
  abort = new AbortController();
  state = fresh();
  render();
  if (!apiKey()) {
    say("Type an API key above to watch this auction.");
    connection("no key");
    return;
  }
  say("");
  try {
    state.listing = await api(`/v1/listings/${encodeURIComponent(listingId)}`);
  } catch (error) {
    return failed(error);
  }
  render();
  follow(abort.signal);
}

function failed(error) {
  if (error instanceof Unauthorized) bar.rejected("That key was not accepted.");
  say(error.message);
  connection("stopped");
}

// The stream, resumed with Last-Event-ID after a drop, until the listing's resolution.
async function follow(signal) {
  const path = `/v1/listings/${encodeURIComponent(listingId)}/stream`;
  while (!state.closed && !signal.aborted) {
    connection("live");
    try {
      await readStream(path, state.lastId, onEvent, signal);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Unauthorized) return failed(error);
    }
    if (state.closed || signal.aborted) break;
    connection("reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
  if (!signal.aborted) connection("auction closed");
}

function connection(text) {
  const node = $("connection");
  node.textContent = text === "live" ? "● live" : text;
  node.className = `connection ${text === "live" ? "on" : ""}`;
}

function onEvent({ id, data: event }) {
  state.lastId = id;
  const d = event.data;
  if (event.type === "listing.opened") {
    state.listing = d;
  } else if (event.type === "bid.placed") {
    state.bids.set(d.id, {
      id: d.id, seq: d.seq, amount: d.amount, rate: d.min_rate_bps, lender: d.lender_id,
      outbid: false,
    });
  } else if (event.type === "bid.outbid") {
    const bid = state.bids.get(d.id);
    if (bid) bid.outbid = true;
  } else {
    state.listing = d.listing;
    state.closed = true;
    if (d.loan) loadLoan(d.loan.id);
  }
  state.events.unshift(event);
  state.events.length = Math.min(state.events.length, LATEST);
  schedule();
}

async function loadLoan(loanId) {
  try {
    state.loan = await api(`/v1/loans/${encodeURIComponent(loanId)}`);
    schedule();
  } catch (error) {
    say(`The loan could not be read: ${error.message}`);
  }
}

// Live bids in priority order (rate, then arrival) fill the amount; the last one partly.
function book() {
  const listing = state.listing;
  const live = [...state.bids.values()].filter((b) => !b.outbid);
  live.sort((a, b) => a.rate - b.rate || a.seq - b.seq);
  let left = listing ? listing.amount : 0;
  for (const bid of live) {
    bid.allocated = Math.min(bid.amount, left);
    left -= bid.allocated;
  }
  const levels = new Map();
  for (const bid of state.bids.values()) {
    const level = levels.get(bid.rate) || { rate: bid.rate, amount: 0, allocated: 0, live: 0, count: 0 };
    level.amount += bid.amount;
    level.count += 1;
    if (!bid.outbid) {
      level.live += bid.amount;
      level.allocated += bid.allocated;
    }
    levels.set(bid.rate, level);
  }
  return {
    levels: [...levels.values()].sort((a, b) => a.rate - b.rate),
    covered: listing ? listing.amount - left : 0,
    active: live.length,
    marginal: live.length ? live[live.length - 1].rate : null,
  };
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function render() {
  const listing = state.listing;
  $("listing-id").textContent = shortId(listingId);
  if (!listing) return;
  const b = book();
  const closed = listing.status !== "open";
  $("status").textContent = listing.status;
  $("status").className = `status ${listing.status}`;
  $("terms").textContent = `${listing.borrower_id} asks ${money(listing.amount, listing.currency)}`
    + ` over ${listing.term_months} months, grade ${listing.grade}, at most`
    + ` ${rate(listing.max_rate_bps)}, ${listing.pricing.replaceAll("_", " ")} pricing`;
  const covered = closed ? listing.funded_amount : b.covered;
  const share = listing.amount ? covered / listing.amount : 0;
  $("coverage-fill").style.width = `${(share * 100).toFixed(2)}%`;
  $("coverage").dataset.covered = String(covered);
  $("coverage").setAttribute("aria-valuenow", (share * 100).toFixed(1));
  $("coverage-min").style.left = `${listing.min_funding_bps / 100}%`;
  $("coverage-label").textContent = `${money(covered, listing.currency)} of`
    + ` ${money(listing.amount, listing.currency)} (${(share * 100).toFixed(1)} %),`
    + ` minimum ${(listing.min_funding_bps / 100).toFixed(0)} %`;
  $("stat-bids").textContent = String(state.bids.size || listing.bid_count);
  $("stat-active").textContent = String(b.active);
  $("stat-marginal").textContent = rate(closed ? listing.marginal_rate_bps : b.marginal);
  $("stat-max").textContent = rate(listing.max_rate_bps);
  drawBook($("chart"), { levels: b.levels, amount: listing.amount, marginal: b.marginal });
  renderEvents(listing);
  tick();
  renderOutcome(listing);
}

function renderEvents(listing) {
  $("events").replaceChildren(...state.events.map((e) => {
    const when = new Date(e.created_at).toLocaleTimeString("en-GB");
    return el("li", { class: e.type.replace(".", "-"), "data-seq": e.seq },
      el("time", { text: when }),
      el("span", { class: "chip", text: e.type.split(".")[1] }),
      el("span", { class: "what", text: describe(e, listing.currency) }));
  }));
}

function describe(event, currency) {
  const d = event.data;
  switch (event.type) {
    case "listing.opened":
      return `Opened: ${money(d.amount, currency)} over ${d.term_months} months,`
        + ` at most ${rate(d.max_rate_bps)}`;
    case "bid.placed":
      return `${money(d.amount, currency)} at ${rate(d.min_rate_bps)} by ${d.lender_id}`;
    case "bid.outbid":
      return `${money(d.amount, currency)} at ${rate(d.min_rate_bps)} by ${d.lender_id} pushed out`;
    case "listing.funded":
      return `Funded: a loan of ${money(d.loan.principal, currency)} at ${rate(d.loan.rate_bps)},`
        + ` ${d.loan.fills.length} fills`;
    case "listing.failed":
      return `Failed: ${money(d.covered, currency)} covered, ${money(d.required, currency)} needed`;
    default:
      return "Cancelled; every bid released";
  }
}

function tick() {
  const listing = state && state.listing;
  if (!listing) return;
  if (listing.status === "open") {
    $("clock-label").textContent = "Closes in";
    $("countdown").textContent = countdown(listing.closes_at);
  } else {
    $("clock-label").textContent = "Closed";
    $("countdown").textContent = new Date(listing.closed_at).toLocaleTimeString("en-GB");
  }
}

function renderOutcome(listing) {
  const loan = state.loan;
  $("loan").hidden = !loan;
  const outcome = $("outcome");
  outcome.hidden = !(listing.status === "failed" || listing.status === "cancelled");
  if (!outcome.hidden) {
    outcome.textContent = listing.status === "failed"
      ? "The listing failed: not enough was bid, and every bid was released."
      : "The listing was cancelled, and every bid was released.";
  }
  if (!loan) return;
  $("loan-title").textContent = `Loan ${shortId(loan.id)}`;
  $("loan-facts").replaceChildren(
    ...[
      ["Principal", money(loan.principal, loan.currency)],
      ["Rate", rate(loan.rate_bps)],
      ["Term", `${loan.term_months} months`],
      ["Funded", new Date(loan.funded_at).toLocaleString("en-GB")],
    ].map(([k, v]) => el("div", {}, el("span", { class: "muted small", text: k }), el("b", { text: v }))),
  );
  $("fills").querySelector("tbody").replaceChildren(...loan.fills.map((f) => el("tr", {},
    el("td", { text: f.lender_id }),
    el("td", { class: "num", text: money(f.amount) }),
    el("td", { class: "num", text: rate(f.rate_bps) }))));
  $("schedule").querySelector("tbody").replaceChildren(...loan.schedule.map((r) => el("tr", {},
    el("td", { class: "num", text: String(r.n) }),
    el("td", { text: r.due_date }),
    el("td", { class: "num", text: money(r.payment) }),
    el("td", { class: "num", text: money(r.principal) }),
    el("td", { class: "num", text: money(r.interest) }),
    el("td", { class: "num", text: money(r.balance) }))));
}

setInterval(tick, 1000);
window.addEventListener("resize", schedule);
start();
