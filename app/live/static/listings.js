// GET /: the open listings, refreshed every few seconds; each row links to its auction page.
import { Unauthorized, api, apiKey, countdown, el, keyBar, money, rate, shortId } from "./common.js";

const REFRESH_MS = 5000;
const body = document.querySelector("#listings tbody");
const notice = document.getElementById("notice");
const empty = document.getElementById("empty");
let listings = [];
let timer = null;

const bar = keyBar(() => refresh());

function say(message) {
  notice.textContent = message;
  notice.hidden = !message;
}

async function refresh() {
  clearTimeout(timer);
  if (!apiKey()) {
    listings = [];
    render();
    say("Type an API key above to see the auctions.");
    return;
  }
  try {
    const page = await api("/v1/listings?status=open&limit=100");
    listings = page.data;
    say("");
  } catch (error) {
    if (error instanceof Unauthorized) bar.rejected("That key was not accepted.");
    say(error.message);
  }
  render();
  timer = setTimeout(refresh, REFRESH_MS);
}

function render() {
  body.replaceChildren(
    ...listings.map((l) => {
      const covered = Math.min(1, l.funded_amount / l.amount);
      const link = el("a", { href: `/auctions/${l.id}`, text: shortId(l.id) });
      return el(
        "tr",
        { "data-listing": l.id },
        el("td", {}, link, el("div", { class: "muted small", text: l.borrower_id })),
        el("td", {}, el("span", { class: "grade", text: l.grade })),
        el("td", { class: "num", text: money(l.amount, l.currency) }),
        el("td", { class: "num", text: `${l.term_months} mo` }),
        el("td", { class: "num", text: rate(l.max_rate_bps) }),
        el(
          "td",
          {},
          el("div", { class: "mini-bar" }, bar_fill(covered)),
          el("div", { class: "small", text: `${(covered * 100).toFixed(1)} %` }),
        ),
        el("td", { class: "num", text: String(l.bid_count) }),
        el("td", { class: "num", text: rate(l.marginal_rate_bps) }),
        el("td", { class: "num countdown", "data-closes": l.closes_at, text: countdown(l.closes_at) }),
      );
    }),
  );
  empty.hidden = listings.length > 0 || !apiKey();
}

function bar_fill(share) {
  const fill = el("span");
  fill.style.width = `${(share * 100).toFixed(2)}%`;
  return fill;
}

setInterval(() => {
  for (const cell of document.querySelectorAll(".countdown")) {
    cell.textContent = countdown(cell.dataset.closes);
  }
}, 1000);

refresh();
