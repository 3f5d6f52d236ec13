"""The operators' way in: the blueprint's guard (basic auth, CSRF, the login throttle) and the dashboard."""

import hmac
import logging

from flask import abort, current_app, render_template, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import or_, select

from storefront.admin import bp
from storefront.catalog.images import MAX_UPLOAD_BYTES
from storefront.catalog.models import Product
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront.inventory.models import Hold, HoldStatus
from storefront.inventory.stock import BelowCommitted, set_total, stock_levels, unit_counts
from storefront.owners import address_block, client_address
from storefront.payments.models import PaymentEvent

# The product forms carry a photo, and an import a catalogue: the places a request may be larger
# than MAX_CONTENT_LENGTH.
UPLOAD_ENDPOINTS = ("admin.create_product", "admin.save_product", "admin.preview_import", "admin.apply_import")
UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + 256 * 1024
csrf = CSRFProtect()
log = logging.getLogger(__name__)
HOLDS_PER_PAGE = 200
PAYMENTS_PER_PAGE = 200


def init_app(app) -> None:
    # Only the admin checks tokens: shopper endpoints carry no ambient credential and
    # the webhook is signed, so they stay open to API clients as the contract says.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    csrf.init_app(app)
    app.register_blueprint(bp)


@bp.before_request
def operators_only():
    password = current_app.config["STOREFRONT"].admin_password
    if not password:
        raise not_found("No such page.")
    address = client_address()
    failed_logins = current_app.extensions["storefront.failed_logins"]
    factor = current_app.config["STOREFRONT"].ipv6_block_factor
    block = address_block(address) if factor else None
    wait = failed_logins.wait_seconds(address) or (failed_logins.wait_seconds(block, factor) if block else 0)
    if wait:
        # Refused before the password is even looked at: a right guess now tells the guesser nothing.
        return current_app.response_class("Too many failed logins from this address; try again later.", 429,
                                          headers={"Retry-After": str(wait)}, mimetype="text/plain")
    auth = request.authorization
    given = (auth.password or "") if auth and auth.type == "basic" else ""
    user_ok = hmac.compare_digest((auth.username or "") if auth else "", "admin")
    if not (user_ok and hmac.compare_digest(given.encode(), password.encode())):
        if auth is not None:  # a browser's first visit sends nothing: only a wrong guess counts
            failed_logins.failed(address)
            if block:
                failed_logins.failed(block, factor)
            log.warning("admin: failed login from %s", address)
        response = current_app.response_class("Authentication required.", 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="Storefront admin", charset="UTF-8"'
        return response
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = UPLOAD_REQUEST_BYTES  # a photo or a catalogue; everything else stays small
        request.max_form_memory_size = UPLOAD_REQUEST_BYTES  # a catalogue sent back to be applied
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


def _product_rows():
    products = db.session.execute(select(Product).order_by(Product.id)).scalars().all()
    conn = db.session.connection()
    levels = stock_levels(conn, [p.id for p in products])
    counts = unit_counts(conn, [p.id for p in products])
    rows = []
    for product in products:
        stock, sold = levels[product.id], counts[product.id].sold
        rows.append({"product": product, "total": stock.total, "sold": sold,
                     "held": stock.total - sold - stock.available, "available": stock.available})
    return rows


def _failed_jobs():
    """Failed jobs with their error, or None when there is no queue (embedded mode)."""
    from storefront.jobs import RedisJobs, job_runner

    runner = job_runner()
    if not isinstance(runner, RedisJobs):
        return None
    registry = runner.failed_registry()
    jobs = []
    for job in runner.fetch_many(registry.get_job_ids()):
        if job is None:
            continue
        result = job.latest_result()
        error = (result.exc_string if result else "") or ""
        jobs.append({"id": job.id, "function": job.func_name, "ended_at": job.ended_at,
                     "error": error.strip().splitlines()[-1] if error.strip() else "(no error recorded)"})
    return jobs


def _consumer_lag():
    settings = current_app.config["STOREFRONT"]
    if not settings.kafka_bootstrap_servers:
        return None
    from storefront.events.kafka import consumer_lag

    try:
        return consumer_lag(settings.kafka_bootstrap_servers, settings.kafka_payments_topic)
    except Exception as error:  # the page still shows the rest when Kafka is down
        log.warning("could not read the consumer lag: %s", type(error).__name__)
        return {"error": "Kafka did not answer"}


@bp.get("/")
def dashboard():
    return render_template("admin/index.html", rows=_product_rows(), jobs=_failed_jobs(), lag=_consumer_lag())


@bp.post("/products/<product_id:product_id>/total")
def change_total(product_id: int):
    try:
        total = int(request.form.get("total", ""))
        if total < 0:
            raise ValueError
    except ValueError:
        raise ApiError(400, "invalid_request", "The total must be a whole number, 0 or more.", field="total") from None
    try:
        with db.engine.begin() as conn:
            stock = set_total(conn, product_id, total)
    except BelowCommitted as committed:
        raise ApiError(
            409, "below_committed",
            f"Refused: {committed.sold} sold and {committed.held} held, so the total cannot go below "
            f"{committed.sold + committed.held}.",
        ) from None
    if stock is None:
        raise not_found("No such product.")
    log.info("admin set product %s total to %s", product_id, total)
    row = next(row for row in _product_rows() if row["product"].id == product_id)
    return render_template("admin/_product_row.html", row=row)


@bp.get("/holds")
def holds_page():
    status = request.args.get("status") or None
    if status is not None and status not in HoldStatus.__members__:
        abort(400, "Unknown status.")
    product_id = request.args.get("product", type=int)
    query = select(Hold).order_by(Hold.created_at.desc()).limit(HOLDS_PER_PAGE)
    if status:
        query = query.where(Hold.status == status)
    if product_id:
        query = query.where(Hold.product_id == product_id)
    holds = db.session.execute(query).scalars().all()
    products = db.session.execute(select(Product).order_by(Product.id)).scalars().all()
    return render_template("admin/holds.html", holds=holds, products=products, status=status,
                           product_id=product_id, statuses=list(HoldStatus))


@bp.get("/payments")
def payments_page():
    """Payments the webhook did not settle (the return page, reconciliation), and every refund."""
    events = db.session.execute(
        select(PaymentEvent)
        .where(or_(PaymentEvent.trigger != "webhook", PaymentEvent.refund_id.is_not(None),
                   PaymentEvent.outcome.in_(["amount_mismatch", "foreign_intent", "refund_due",
                                             "partly_refunded"])))
        .order_by(PaymentEvent.updated_at.desc())
        .limit(PAYMENTS_PER_PAGE)
    ).scalars().all()
    return render_template("admin/payments.html", events=events)


@bp.post("/jobs/<job_id>/<any(retry, discard):action>")
def job_action(job_id: str, action: str):
    from storefront.jobs import RedisJobs, job_runner

    runner = job_runner()
    if not isinstance(runner, RedisJobs):
        raise not_found("No failed jobs here: without REDIS_URL jobs run at once.")
    registry = runner.failed_registry()
    if job_id not in registry:
        raise not_found("No such failed job.")
    if action == "retry":
        registry.requeue(job_id)
    else:
        registry.remove(job_id, delete_job=True)
    log.info("admin %s failed job %s", action, job_id)
    return render_template("admin/_failed_jobs.html", jobs=_failed_jobs())
