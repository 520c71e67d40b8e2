"""Who may call what: the expected answer of every route the app serves, for every caller.

Written by hand, not read from the app: `tests/integration/test_auth_matrix.py` fails when a
route is served that has no row here (a new route must be placed in the matrix), when a row has
no route, and when a route's declared roles differ from its row, and then calls every route as
every caller to see each row hold.
"""

from typing import Literal

Outcome = Literal["admitted", "forbidden_role", "unauthorized"]
Route = tuple[str, str]  # (method, path as declared)

#: The callers, in the matrix's column order; "no key" sends no valid key (or none at all).
CALLERS = ("admin", "borrower", "lender", "no key")
#: The subject each key role acts as; paths name the caller's own resources, so a caller the
#: matrix admits meets no subject check either.
SUBJECTS = {"admin": "lena", "borrower": "bob", "lender": "lena", "no key": "lena"}

A: Outcome = "admitted"  # anything but 401 and 403 (and never a 5xx)
R: Outcome = "forbidden_role"  # 403
U: Outcome = "unauthorized"  # 401

#: Routes that are not `Requires`-guarded but check a key themselves.
SELF_GUARDED: frozenset[Route] = frozenset({("GET", "/metrics")})

#: route -> (admin, borrower, lender, no key)
MATRIX: dict[Route, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    # open to anyone: the docs, health, the live page
    ("GET", "/docs"): (A, A, A, A),
    ("GET", "/docs/oauth2-redirect"): (A, A, A, A),
    ("GET", "/redoc"): (A, A, A, A),
    ("GET", "/healthz"): (A, A, A, A),
    ("GET", "/readyz"): (A, A, A, A),
    ("GET", "/"): (A, A, A, A),
    ("GET", "/auctions/{listing_id}"): (A, A, A, A),
    ("GET", "/metrics"): (A, R, R, U),
    # listings: borrowers open and close them, everyone with a key reads them
    ("POST", "/v1/listings"): (A, A, R, U),
    ("GET", "/v1/listings"): (A, A, A, U),
    ("GET", "/v1/listings/{listing_id}"): (A, A, A, U),
    ("GET", "/v1/listings/{listing_id}/bids"): (A, A, A, U),
    ("GET", "/v1/listings/{listing_id}/book"): (A, A, A, U),
    ("GET", "/v1/listings/{listing_id}/stream"): (A, A, A, U),
    ("POST", "/v1/listings/{listing_id}/accept"): (A, A, R, U),
    ("POST", "/v1/listings/{listing_id}/cancel"): (A, A, R, U),
    # bids: lenders place and read their own
    ("POST", "/v1/listings/{listing_id}/bids"): (A, R, A, U),
    ("GET", "/v1/bids/{bid_id}"): (A, R, A, U),
    ("GET", "/v1/lenders/{lender_id}/bids"): (A, R, A, U),
    ("GET", "/v1/loans/{loan_id}"): (A, A, A, U),
    # money: only the payment side (admin) reports deposits; owners withdraw and read
    ("POST", "/v1/accounts/{account_id}/deposits"): (A, R, R, U),
    ("POST", "/v1/accounts/{account_id}/withdrawals"): (A, A, A, U),
    ("GET", "/v1/accounts/{account_id}"): (A, A, A, U),
    ("GET", "/v1/accounts/{account_id}/entries"): (A, A, A, U),
    ("GET", "/v1/platform/accounts"): (A, R, R, U),
    ("GET", "/v1/policy"): (A, A, A, U),
    # standing orders: a lender's automatic bidding, its own (or any, for an admin)
    ("POST", "/v1/standing-orders"): (A, R, A, U),
    ("GET", "/v1/standing-orders"): (A, R, A, U),
    ("GET", "/v1/standing-orders/{order_id}"): (A, R, A, U),
    ("PATCH", "/v1/standing-orders/{order_id}"): (A, R, A, U),
    ("DELETE", "/v1/standing-orders/{order_id}"): (A, R, A, U),
    # the event log and its stream name every lender: admins only
    ("GET", "/v1/events"): (A, R, R, U),
    ("GET", "/v1/events/stream"): (A, R, R, U),
    # keys and webhooks: admins only (a lender subscribed to webhooks sees every bid)
    ("POST", "/v1/api-keys"): (A, R, R, U),
    ("GET", "/v1/api-keys"): (A, R, R, U),
    ("DELETE", "/v1/api-keys/{key_id}"): (A, R, R, U),
    ("POST", "/v1/webhook-endpoints"): (A, R, R, U),
    ("GET", "/v1/webhook-endpoints"): (A, R, R, U),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): (A, R, R, U),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): (A, R, R, U),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): (A, R, R, U),
    ("POST", "/v1/events/{event_id}/redeliver"): (A, R, R, U),
}

#: Valid bodies, so that an admitted write is one the route can carry out.
BODIES: dict[Route, dict[str, object]] = {
    ("POST", "/v1/listings"): {
        "borrower_id": "bob", "amount": 300_000, "term_months": 12, "max_rate_bps": 2000,
        "grade": "B", "duration_s": 600,
    },
    ("POST", "/v1/listings/{listing_id}/bids"): {
        "amount": 10_000, "min_rate_bps": 1000, "lender_id": "lena",
    },
    ("POST", "/v1/accounts/{account_id}/deposits"): {"amount": 1_000, "reference": "matrix"},
    ("POST", "/v1/accounts/{account_id}/withdrawals"): {"amount": 1_000, "reference": "matrix"},
    ("POST", "/v1/standing-orders"): {
        "lender_id": "lena", "grades": ["B"], "term_months_min": 1, "term_months_max": 60,
        "min_rate_bps": 1000, "amount_per_listing": 10_000, "budget": 100_000,
    },
    ("PATCH", "/v1/standing-orders/{order_id}"): {"active": False},
    ("POST", "/v1/api-keys"): {"role": "lender", "subject": "someone"},
    ("POST", "/v1/webhook-endpoints"): {"url": "https://hooks.invalid/matrix"},
}


def expected(route: Route, caller: str) -> Outcome:
    return MATRIX[route][CALLERS.index(caller)]


def admitted_roles(route: Route) -> set[str]:
    """The key roles the matrix admits to `route` (the callers with a key)."""
    return {c for c, outcome in zip(CALLERS, MATRIX[route], strict=True)
            if c != "no key" and outcome == A}
