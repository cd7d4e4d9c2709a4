"""The ``paygate`` command (README, "Processes and commands"): clients, worker, database migrations, redelivery, demo."""

from __future__ import annotations

import contextlib
import json
import sys

import click

from kernel.errors import ConfigError
from kernel.settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as err:
        raise click.ClickException(f"configuration error: {err.message}") from None


@contextlib.contextmanager
def _services():
    """The composition root's services for a command (the database migrated first when it is a fresh SQLite
    file), closed afterwards."""
    from paygate.migrate import upgrade

    from .services import build_services

    settings = _settings()
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url, lock_dir=settings.instance_path)
    svc = build_services(settings)
    try:
        yield svc
    finally:
        svc.close()


def package_version() -> str:
    """paygate's version: the installed distribution's (:func:`importlib.metadata.version`), else the ``version`` of
    the source tree's ``pyproject.toml`` (run from a checkout that is not installed), else ``"unknown"``."""
    from importlib import metadata

    try:
        return metadata.version("paygate")
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        try:
            pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
            return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"paygate {package_version()}")
        ctx.exit()


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Checks an option that takes a URL with the rules of the API's ``callback_url`` (docs/api.md, "Callback URLs
    in production"; :func:`payments.events.callback_url_problem`): an absolute https URL, or http outside production
    (and to a loopback host); in production the host may not be, or resolve to, an internal address
    (:mod:`kernel.netguard`). Empty (an option's "clear" value) and absent pass; else a usage error (exit 2)."""
    if not value:
        return value
    from payments.events import CALLBACK_URL_NOT_ALLOWED, callback_url_problem

    production = _settings().production
    problem = callback_url_problem(value, production=production)
    if problem == CALLBACK_URL_NOT_ALLOWED:
        raise click.BadParameter(f"{problem}: its host is, or resolves to, a private, loopback, link-local, "
                                 "multicast or reserved address", ctx=ctx, param=param)
    if problem:
        rule = "an absolute https URL" if production else "an absolute http or https URL"
        raise click.BadParameter(f"{problem}: {value!r} is not {rule}", ctx=ctx, param=param)
    return value


@click.group()
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version of paygate and exit.")
def main() -> None:
    """paygate: hosted payment page and card tokenization for Genesys Cloud CX."""


@main.group()
def clients() -> None:
    """Manage API clients."""


@clients.command("create")
@click.argument("name")
@click.option("--callback-url", default=None, callback=_url, metavar="URL",
              help="Default endpoint for this client's events: https (http outside production), a public address in "
                   "production.")
@click.option("--display-name", default=None, metavar="TEXT",
              help="The name customers see on the payment page and in the SMS, e.g. \"Acme Mobile\" "
                   "(1-100 characters; default: NAME).")
@click.option("--support-phone", default=None, metavar="E164",
              help="A phone number customers can call, shown on the payment page: + and the country code, "
                   "e.g. +14155550132.")
@click.option("--accent-color", default=None, metavar="#RRGGBB",
              help="Colour of the pay button and links; white text on it needs a WCAG contrast of at least 4.5:1.")
def clients_create(name: str, callback_url: str | None, display_name: str | None, support_phone: str | None,
                   accent_color: str | None) -> None:
    """Create an API client; prints its id and secrets once, as JSON.

    The callback URL follows the rules of a session's callback_url (docs/api.md, "Callback URLs in production"),
    checked before anything is stored; so are the display name, support phone and accent colour (docs/api.md,
    "Merchant identity")."""
    from payments.clients import create_client

    identity = _identity_options(display_name=display_name, support_phone=support_phone, accent_color=accent_color)
    with _services() as svc:
        with svc.Session.begin() as db:
            created = create_client(db, name=name, callback_url=callback_url, now=svc.clock(), new_id=svc.new_id,
                                    **identity)
    click.echo(json.dumps(created.as_dict()))


def _identity_options(**given) -> dict:
    """The merchant identity options that were given (not None), checked (payments.clients.merchant_identity_fields):
    a bad value is a usage error (exit 2) naming the option and the rule, with the contrast ratio for a colour."""
    from kernel.errors import ValidationFailed
    from payments.clients import merchant_identity_fields

    values = {k: v for k, v in given.items() if v is not None}
    try:
        merchant_identity_fields(**{k: (v or None) for k, v in values.items()})
    except ValidationFailed as err:
        field_name = next(iter(err.details.get("fields", {})), "display_name")
        raise click.BadParameter(f"{err.code}: {err.message}",
                                 param_hint="--" + field_name.replace("_", "-")) from None
    return values


@clients.command("update")
@click.argument("client_id")
@click.option("--display-name", default=None, metavar="TEXT",
              help="The name customers see on the payment page and in the SMS (1-100 characters).")
@click.option("--support-phone", default=None, metavar="E164",
              help="A phone number customers can call, shown on the page (+ and the country code); \"\" removes it.")
@click.option("--accent-color", default=None, metavar="#RRGGBB",
              help="Colour of the pay button and links (white text on it: contrast 4.5:1 or more); \"\" removes it.")
def clients_update(client_id: str, display_name: str | None, support_phone: str | None,
                   accent_color: str | None) -> None:
    """Change how CLIENT_ID appears to customers (docs/api.md, "Merchant identity"); prints the client's
    identity as JSON. Options not given stay as they are; an empty --display-name goes back to the client's
    name. Pages show the change within 30 seconds."""
    from payments.clients import update_merchant_identity

    values = _identity_options(display_name=display_name, support_phone=support_phone, accent_color=accent_color)
    if not values:
        raise click.UsageError("nothing to change: give --display-name, --support-phone or --accent-color")
    with _services() as svc:
        with svc.Session.begin() as db:
            from payments.models import ApiClient

            if db.get(ApiClient, client_id) is None:
                raise click.ClickException(f"no client {client_id}")
            client = update_merchant_identity(db, client_id, **{k: (v or None) for k, v in values.items()})
            out = {"client_id": client.id, "name": client.name, "display_name": client.display_name or client.name,
                   "support_phone": client.support_phone, "accent_color": client.accent_color}
    click.echo(json.dumps(out))


@clients.command("rotate-signing-secret")
@click.argument("client_id")
@click.option("--keep", default=1, show_default=True, help="How many older secrets stay active.")
def clients_rotate(client_id: str, keep: int) -> None:
    """Add a new event signing secret; events carry one v1= per active secret until the old ones go."""
    from payments.clients import rotate_signing_secret
    from payments.models import ApiClient

    with _services() as svc:
        with svc.Session.begin() as db:
            client = db.get(ApiClient, client_id)
            if client is None:
                raise click.ClickException(f"no client {client_id}")
            new = rotate_signing_secret(db, client, keep_previous=keep)
    click.echo(json.dumps({"client_id": client_id, "signing_secret": new}))


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def clients_list(as_json: bool) -> None:
    """List API clients: id, status (active/disabled), name, default callback URL, creation time, display name (the
    name customers see). No secrets."""
    from sqlalchemy import select

    from payments.models import ApiClient

    with _services() as svc:
        with svc.Session() as db:
            rows = db.execute(select(ApiClient.id, ApiClient.name, ApiClient.active, ApiClient.callback_url,
                                     ApiClient.created_at, ApiClient.display_name)
                              .order_by(ApiClient.created_at, ApiClient.id)).all()
    for row in rows:
        status = "active" if row.active else "disabled"
        created = row.created_at.isoformat(timespec="seconds") + "Z"
        if as_json:
            click.echo(json.dumps({"client_id": row.id, "name": row.name, "status": status,
                                   "callback_url": row.callback_url, "created_at": created,
                                   "display_name": row.display_name or row.name}))
        else:
            click.echo("\t".join([row.id, status, row.name, row.callback_url or "-", created,
                                   row.display_name or row.name]))


def _client_changed(client_id: str, change) -> dict:
    """Applies ``change(db, client) -> dict`` to CLIENT_ID in one transaction, then refreshes the client's
    cached token state (payments.clients.ClientStates) so its tokens follow at once. Returns the dict."""
    from payments.clients import ClientStates
    from payments.models import ApiClient

    with _services() as svc:
        with svc.Session.begin() as db:
            client = db.get(ApiClient, client_id)
            if client is None:
                raise click.ClickException(f"no client {client_id}")
            out = change(db, client)
        if not ClientStates(svc.Session, svc.redis).refresh(client_id):
            click.echo("warning: Redis is unreachable; tokens follow the change within 30 seconds", err=True)
    return out


def _set_active(active: bool):
    def change(_db, client) -> dict:
        client.active = active
        return {"client_id": client.id, "status": "active" if active else "disabled"}

    return change


@clients.command("disable")
@click.argument("client_id")
def clients_disable(client_id: str) -> None:
    """Disable CLIENT_ID: its access tokens answer 401 at once and it gets no new ones. No data is deleted."""
    click.echo(json.dumps(_client_changed(client_id, _set_active(False))))


@clients.command("enable")
@click.argument("client_id")
def clients_enable(client_id: str) -> None:
    """Enable CLIENT_ID again (its tokens issued before the disable work again while unexpired)."""
    click.echo(json.dumps(_client_changed(client_id, _set_active(True))))


@clients.command("rotate-secret")
@click.argument("client_id")
def clients_rotate_secret(client_id: str) -> None:
    """Give CLIENT_ID a new client secret, printed once as JSON; the old secret and the tokens issued under it
    stop working at once."""
    from payments.clients import rotate_client_secret

    click.echo(json.dumps(_client_changed(
        client_id, lambda db, client: {"client_id": client.id, "client_secret": rotate_client_secret(db, client)})))


@clients.command("genesys")
@click.argument("client_id")
@click.option("--region", default=None, help="Genesys Cloud region, e.g. us_east_1 (api/login hosts follow).")
@click.option("--api-base", default=None, callback=_url, metavar="URL",
              help="Override of the API host URL (emulator, tests).")
@click.option("--login-base", default=None, callback=_url, metavar="URL",
              help="Override of the login host URL (emulator, tests).")
@click.option("--oauth-client-id", default=None, help="Genesys OAuth client (client credentials) id.")
@click.option("--oauth-client-secret", default=None, envvar="PAYGATE_GENESYS_OAUTH_CLIENT_SECRET",
              show_envvar=True, help="Its secret (prefer the environment variable; stored encrypted).")
@click.option("--workflow-id", default=None, help="Architect workflow started for each event.")
@click.option("--attributes/--no-attributes", "write_attributes", default=None,
              help="Write the payment attributes onto the conversation's participant (default on).")
@click.option("--workflow/--no-workflow", "start_workflow", default=None,
              help="Start the workflow for each event (default: on when a workflow id is set).")
@click.option("--sms-from", default=None, help="Default fromAddress of send-link SMS messages.")
@click.option("--worktype-id", default=None, metavar="UUID",
              help="Task Management worktype of the review workitem each failed refund creates ('' turns it off).")
@click.option("--remove", is_flag=True, help="Remove the client's Genesys settings.")
def clients_genesys(client_id: str, region: str | None, api_base: str | None, login_base: str | None,
                    oauth_client_id: str | None, oauth_client_secret: str | None, workflow_id: str | None,
                    write_attributes: bool | None, start_workflow: bool | None, sms_from: str | None,
                    worktype_id: str | None, remove: bool) -> None:
    """Configure write-back into Genesys Cloud (docs/api.md, "Genesys write-back") and link sending for CLIENT_ID.

    Options left out keep their stored value, so a flag can be flipped without repeating the secret.
    Prints the stored settings as JSON, never the secret.
    """
    from integrations.genesys.settings import GenesysSettings, SecretBox, settings_of
    from kernel.db import make_engine, make_sessionmaker
    from kernel.errors import NotFound, ValidationFailed
    from paygate.migrate import upgrade
    from payments.clients import configure_genesys
    from payments.models import ApiClient

    settings = _settings()
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url, lock_dir=settings.instance_path)
    box = SecretBox(settings.secret_key, settings.previous_secret_keys)
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            client = session.get(ApiClient, client_id)
            if client is None:
                raise click.ClickException(f"no client {client_id}")
            if remove:
                configure_genesys(session, client_id, None, box, production=settings.production)
                stored = None
            else:
                old = settings_of(client)
                workflow_id = workflow_id if workflow_id is not None else (old.workflow_id if old else None)
                if start_workflow is None:
                    start_workflow = old.start_workflow if old else bool(workflow_id)
                new = GenesysSettings(
                    region=region or (old.region if old else ""),
                    client_id=oauth_client_id or (old.client_id if old else ""),
                    api_base=api_base if api_base is not None else (old.api_base if old else None),
                    login_base=login_base if login_base is not None else (old.login_base if old else None),
                    client_secret=oauth_client_secret or None,
                    client_secret_sealed=None if oauth_client_secret else (old.client_secret_sealed if old else None),
                    workflow_id=workflow_id,
                    write_attributes=write_attributes if write_attributes is not None else (
                        old.write_attributes if old else True),
                    start_workflow=start_workflow,
                    sms_from_address=sms_from if sms_from is not None else (old.sms_from_address if old else None),
                    worktype_id=(worktype_id or None) if worktype_id is not None else (old.worktype_id if old else None))
                if old is not None and old.client_secret and not oauth_client_secret:
                    new = new.with_secret(old.client_secret)  # a hand-written plaintext secret gets sealed now
                try:
                    stored = configure_genesys(session, client_id, new, box, production=settings.production)
                except ValidationFailed as err:
                    fields = ", ".join(f"{k}: {v}" for k, v in err.details.get("fields", {}).items())
                    raise click.ClickException(f"{err.message} ({fields})") from None
    except NotFound:
        raise click.ClickException(f"no client {client_id}") from None
    finally:
        engine.dispose()
    click.echo(json.dumps({"client_id": client_id, "genesys": stored.public_view() if stored else None}))


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (Alembic) to PAYGATE_DATABASE_URL and say what was applied: the revisions from and to,
    one line per applied revision, or that the database was already at head."""
    from paygate.migrate import upgrade

    settings = _settings()
    applied = upgrade(settings.database_url, lock_dir=settings.instance_path, report=True)
    after = ", ".join(applied.after) or "(empty)"
    if not applied.revisions:
        click.echo(f"database already at head: {after}")
        return
    before = ", ".join(applied.before) or "(empty database)"
    n = len(applied.revisions)
    click.echo(f"database upgraded from {before} to {after} (head): {n} revision{'s' if n != 1 else ''} applied")
    for revision, message in applied.revisions:
        click.echo(f"  {revision}  {message.splitlines()[0] if message else ''}".rstrip())


@main.command()
def worker() -> None:
    """Deliver events (outbox), expire sessions, lapse holds, reconcile unknown gateway answers and post the
    sandbox's webhooks (see paygate.worker.periodic_tasks)."""
    from kernel.logging import configure_logging
    from paygate.worker import serve

    settings = _settings()
    configure_logging(settings.log_level)
    serve(settings)


@main.group()
def events() -> None:
    """Callback events."""


@events.command("redeliver")
@click.argument("event_id")
def events_redeliver(event_id: str) -> None:
    """Queue every delivery of EVENT_ID again (dead ones included)."""
    from callbacks import outbox
    from kernel.errors import NotFound

    with _services() as svc:
        try:
            with svc.Session.begin() as session:
                deliveries = outbox.redeliver(session, event_id, svc.clock())
        except NotFound:
            raise click.ClickException(f"no event {event_id}") from None
        outbox.wake(svc.redis)
    click.echo(json.dumps({"event_id": event_id, "deliveries_queued": len(deliveries)}))


@main.group()
def refunds() -> None:
    """Refunds: the manual review queue."""


@refunds.command("review")
@click.option("--client", "client_id", default=None, help="Only this API client's refunds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON refund view per line instead of a table.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000),
              help="At most this many refunds.")
def refunds_review(client_id: str | None, as_json: bool, limit: int) -> None:
    """List refunds awaiting manual review (failed refunds: manual_review = required), oldest first.

    Resolve one with POST /v1/refunds/{id}/resolve {"note"} or retry it with POST /v1/refunds/{id}/retry.
    """
    from sqlalchemy import select

    from payments.models import Refund
    from payments.states import ManualReview
    from payments.views import refund_view

    query = select(Refund).where(Refund.manual_review == ManualReview.REQUIRED)
    if client_id:
        query = query.where(Refund.client_id == client_id)
    with _services() as svc, svc.Session() as db:
        rows = list(db.scalars(query.order_by(Refund.created_at, Refund.id).limit(limit)))
    if as_json:
        for r in rows:
            click.echo(json.dumps(refund_view(r)))
        return
    if not rows:
        click.echo("no refunds awaiting review")
        return
    click.echo(f"{'refund':<28} {'payment':<28} {'amount':>12} {'disposition':<28} {'failure':<26} created")
    for r in rows:
        amount = f"{r.amount} {r.currency}"
        click.echo(f"{r.id:<28} {r.payment_id:<28} {amount:>12} {r.disposition_code[:28]:<28} "
                   f"{(r.failure_code or '')[:26]:<26} {r.created_at:%Y-%m-%d %H:%M}")
    click.echo(f"{len(rows)} refund{'s' if len(rows) != 1 else ''} awaiting review")


class _Moment(click.ParamType):
    """An RFC 3339 moment (``2026-11-23T00:00:00Z``) or a date (``2026-11-23``, midnight UTC); UTC without an
    offset."""

    name = "datetime"

    def convert(self, value, param, ctx):
        from datetime import datetime, timezone

        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an RFC 3339 date-time or a date", param, ctx)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


REPORT_PROGRESS_MIN_ROWS = 1000
"""Exports of at least this many rows to a file show a progress bar on stderr."""


@main.group()
def report() -> None:
    """Reports: payments as CSV for reconciliation (docs/api.md, "Reports") and the operator's HTML report."""


@report.command("payments")
@click.option("--since", type=_Moment(), default=None, help="Payments created at or after (RFC 3339 or a date).")
@click.option("--until", type=_Moment(), default=None, help="Payments created before (RFC 3339 or a date).")
@click.option("--client", "client_id", default=None, help="Only this API client's payments (default: every client).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the CSV to this file (default: stdout).")
def report_payments(since, until, client_id: str | None, output: str | None) -> None:
    """Write payments as CSV: the columns and escaping of GET /v1/reports/payments.csv, oldest first, created in
    [--since, --until). Streams page by page; a large export to a file shows a progress bar on stderr."""
    from payments.reports import PaymentReport

    with _services() as svc:
        if client_id is not None:
            from payments.models import ApiClient

            with svc.Session() as db:
                if db.get(ApiClient, client_id) is None:
                    raise click.ClickException(f"no client {client_id}")
        rep = PaymentReport(svc.Session, client_id, created_after=since, created_before=until)
        total = rep.count() if output else 0
        lines = rep.lines()
        written = 0
        target = open(output, "w", encoding="utf-8", newline="") if output else \
            contextlib.nullcontext(sys.stdout)
        with target as out:
            out.write(next(lines))  # the header
            if total >= REPORT_PROGRESS_MIN_ROWS:
                with click.progressbar(length=total, label="exporting payments", file=sys.stderr) as bar:
                    for line in lines:
                        out.write(line)
                        written += 1
                        bar.update(1)
            else:
                for line in lines:
                    out.write(line)
                    written += 1
    if output:
        click.echo(f"{written} payment{'s' if written != 1 else ''} written to {output}", err=True)


@report.command("html")
@click.option("--since", type=_Moment(), default=None,
              help="Start of the period, included (RFC 3339 or a date; default: 7 days before --until).")
@click.option("--until", type=_Moment(), default=None, help="End of the period, excluded (default: now).")
@click.option("--client", "client_id", default=None, help="Only this API client's figures (default: every client).")
@click.option("--bucket", type=click.Choice(["hour", "day", "week"]), default=None,
              help="Step of the charts over time (default: hour up to 2 days, day up to 92 days, else week).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the HTML to this file (default: stdout).")
def report_html(since, until, client_id: str | None, bucket: str | None, output: str | None) -> None:
    """Write the operator report: one self-contained HTML file (no script, nothing fetched) with charts of the
    approval rate over time, declines by code, fraud blocks by rule, refunds and their failures, disputes and
    gateway latency p50/p99, for what was created in [--since, --until). Aggregates only, no card data
    (docs/operations.md, "The operator report")."""
    from datetime import timedelta

    from paygate.report_html import render_html
    from payments.operator_report import build_report

    with _services() as svc:
        now = svc.clock()
        until = until or now
        since = since or until - timedelta(days=7)
        if since >= until:
            raise click.ClickException("--since must be before --until")
        if client_id is not None:
            from payments.models import ApiClient

            with svc.Session() as db:
                if db.get(ApiClient, client_id) is None:
                    raise click.ClickException(f"no client {client_id}")
        figures = build_report(svc.Session, since, until, generated_at=now, client_id=client_id, bucket=bucket)
    html = render_html(figures)
    if output:
        with open(output, "w", encoding="utf-8") as out:
            out.write(html)
        click.echo(f"report of {figures.attempts} card submissions, {figures.refunds} refunds and "
                   f"{figures.disputes} disputes written to {output}", err=True)
    else:
        click.echo(html, nl=False)


@main.group()
def vault() -> None:
    """The card vault's keys (docs/operations.md, "Rotating the vault keys")."""


@vault.command("rewrap")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 10_000),
              help="Records per transaction.")
def vault_rewrap(batch: int) -> None:
    """Move every vaulted card to the first key of PAYGATE_VAULT_KEYS. Resumable: a stopped run loses nothing
    and the next one continues; safe while the app runs. Prints {"key_id", "rewrapped", "skipped", "failed"} as
    JSON; exits 1 when some records could not be opened (their tokens are listed, never card data)."""
    from tokenizer.rewrap import outstanding, rewrap_all

    with _services() as svc:
        total = outstanding(svc.Session, svc.vault)
        with click.progressbar(length=total, label=f"rewrapping under {svc.vault.current_key_id}",
                               file=sys.stderr) as bar:
            report = rewrap_all(svc.Session, svc.vault, batch=batch, progress=bar.update)
    click.echo(json.dumps(report.as_dict()))
    if report.failed:
        sys.exit(1)


@main.group("secrets")
def secrets_group() -> None:
    """What is sealed with PAYGATE_SECRET_KEY (docs/operations.md, "Rotating the secret key")."""


@secrets_group.command("reseal")
def secrets_reseal() -> None:
    """Re-seal every stored Genesys OAuth client secret under PAYGATE_SECRET_KEY, so that the keys in
    PAYGATE_PREVIOUS_SECRET_KEYS can be dropped. Idempotent and resumable: one transaction per API client (its row
    locked), secrets already under the current key are skipped; safe while the app runs. Prints {"resealed",
    "skipped", "failed"} as JSON (``failed``: ids of clients whose secret no configured key opens, never a secret);
    exits 1 when there are any."""
    from sqlalchemy import select

    from integrations.genesys.settings import SecretBox
    from kernel.errors import PaygateError
    from payments.models import ApiClient

    resealed, skipped, failed = 0, 0, []
    with _services() as svc:
        box = SecretBox(svc.settings.secret_key, svc.settings.previous_secret_keys)
        with svc.Session() as db:
            client_ids = list(db.scalars(select(ApiClient.id).order_by(ApiClient.id)))
        with click.progressbar(client_ids, label="resealing Genesys secrets", file=sys.stderr) as bar:
            for client_id in bar:
                with svc.Session.begin() as db:
                    client = db.get(ApiClient, client_id, with_for_update=True)
                    stored = client.genesys if client is not None else None
                    sealed = stored.get("client_secret_sealed") if isinstance(stored, dict) else None
                    if not sealed:
                        continue  # no Genesys settings, or a hand-written plaintext secret: nothing sealed
                    if box.is_current(sealed):
                        skipped += 1
                        continue
                    try:
                        client.genesys = {**stored, "client_secret_sealed": box.reseal(sealed)}
                    except PaygateError:
                        failed.append(client_id)
                        continue
                    resealed += 1
    click.echo(json.dumps({"resealed": resealed, "skipped": skipped, "failed": failed}))
    if failed:
        sys.exit(1)


@main.group()
def i18n() -> None:
    """The translation catalogs of the checkout page and the SMS (docs/api.md, "Languages")."""


@i18n.command("compile")
@click.option("--check", is_flag=True, help="Only report catalogs whose .mo is missing or stale (exit 1 if any).")
def i18n_compile(check: bool) -> None:
    """Compile kernel/translations/*/LC_MESSAGES/messages.po into messages.mo."""
    from .catalogs import compile_catalogs

    stale = compile_catalogs(check=check)
    click.echo(json.dumps({"stale" if check else "compiled": stale}))
    if check and stale:
        sys.exit(1)


@i18n.command("extract")
def i18n_extract() -> None:
    """Extract the messages into messages.pot and merge new ones into each .po (they arrive untranslated)."""
    from .catalogs import update_catalogs, write_template

    path = write_template()
    click.echo(json.dumps({"template": str(path), "untranslated": update_catalogs()}))


@main.command()
@click.option("--port", default=8000, show_default=True, help="Port of the paygate web app on 127.0.0.1.")
@click.option("--emulator-port", default=8010, show_default=True,
              help="Port of the Genesys Cloud emulator on 127.0.0.1.")
def demo(port: int, emulator_port: int) -> None:
    """Run everything on the embedded defaults and print a working checkout link."""
    from .demo import run_demo

    sys.exit(run_demo(port=port, emulator_port=emulator_port))


if __name__ == "__main__":
    main()
