"""The ``paygate`` command's housekeeping (README, "Processes and commands"): help on every option, ``--version``,
URL options checked like the API's ``callback_url``, and ``db upgrade`` saying what it applied."""

from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path

import click
from click.testing import CliRunner

from paygate import cli as cli_module
from paygate.cli import main as cli
from paygate.migrate import MIGRATIONS_DIR, alembic_config
from tests.functional.test_security import cli_env, strong_secrets

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def _commands(group: click.Group, prefix: tuple[str, ...] = ("paygate",)):
    """(path, command) for ``group`` and every command under it."""
    yield prefix, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_and_option_has_help():
    missing = []
    commands = list(_commands(cli))
    assert len(commands) >= 15
    for path, command in commands:
        if not (command.help or "").strip():
            missing.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert not missing, f"without help text: {missing}"
    out = CliRunner().invoke(cli, ["clients", "create", "--help"])
    assert out.exit_code == 0 and "--callback-url URL" in out.output


def test_version_comes_from_the_package_metadata_and_falls_back_to_pyproject(monkeypatch):
    out = CliRunner().invoke(cli, ["--version"])
    assert out.exit_code == 0, out.output
    assert out.output == f"paygate {metadata.version('paygate')}\n"
    assert metadata.version("paygate") == PYPROJECT_VERSION  # the install is current

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli_module.package_version() == PYPROJECT_VERSION
    assert CliRunner().invoke(cli, ["--version"]).output == f"paygate {PYPROJECT_VERSION}\n"


def _clients(stack) -> list[dict]:
    out = CliRunner().invoke(cli, ["clients", "list", "--json"], env=cli_env(stack))
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in out.output.splitlines()]


def test_clients_create_refuses_a_callback_url_that_is_not_one_before_storing_anything(stack):
    before = len(_clients(stack))
    for bad in ("notaurl", "ftp://hooks.example/cb", "//hooks.example/cb", "https://", "http://[::1/cb"):
        out = CliRunner().invoke(cli, ["clients", "create", "acme", "--callback-url", bad], env=cli_env(stack))
        assert out.exit_code == 2, (bad, out.output)  # a usage error
        assert "Invalid value for '--callback-url': invalid_url" in out.output, out.output
    assert len(_clients(stack)) == before
    ok = CliRunner().invoke(cli, ["clients", "create", "acme", "--callback-url", "http://127.0.0.1:9/cb"],
                            env=cli_env(stack))
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["client_id"].startswith("cli_") and len(_clients(stack)) == before + 1


def test_in_production_url_options_refuse_plain_http_and_internal_addresses(stack_factory):
    production = stack_factory(ENV="production", PUBLIC_BASE_URL="https://pay.example.com", **strong_secrets())
    env = cli_env(production, PUBLIC_BASE_URL="https://pay.example.com", **strong_secrets())
    plain = CliRunner().invoke(cli, ["clients", "create", "acme", "--callback-url", "http://8.8.8.8/cb"], env=env)
    assert plain.exit_code == 2 and "invalid_url" in plain.output and "absolute https URL" in plain.output
    for internal in ("https://10.0.0.1/hooks", "https://127.0.0.1/hooks", "https://[::1]/hooks",
                     "https://169.254.169.254/latest"):
        out = CliRunner().invoke(cli, ["clients", "create", "acme", "--callback-url", internal], env=env)
        assert out.exit_code == 2 and "callback_url_not_allowed" in out.output, (internal, out.output)
        genesys = CliRunner().invoke(cli, ["clients", "genesys", production.client.client_id, "--region",
                                           "us_east_1", "--oauth-client-id", "gc", "--login-base", internal],
                                     env={**env, "PAYGATE_GENESYS_OAUTH_CLIENT_SECRET": "s"})
        assert genesys.exit_code == 2 and "'--login-base': callback_url_not_allowed" in genesys.output, genesys.output
    public = CliRunner().invoke(cli, ["clients", "create", "acme", "--callback-url", "https://8.8.8.8/hooks"], env=env)
    assert public.exit_code == 0, public.output


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_db_upgrade_says_what_it_applied(stack, tmp_path):
    from alembic import command

    revisions = _revisions()
    assert len(revisions) >= 4 and len(list((MIGRATIONS_DIR / "versions").glob("*.py"))) == len(revisions)
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    env = {**cli_env(stack), "PAYGATE_DATABASE_URL": url}

    fresh = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert fresh.exit_code == 0, fresh.output
    lines = fresh.output.splitlines()
    assert lines[0] == (f"database upgraded from (empty database) to {revisions[-1]} (head): "
                        f"{len(revisions)} revisions applied")
    assert [line.split()[0] for line in lines[1:]] == revisions
    assert all(len(line.split(None, 1)) == 2 for line in lines[1:])  # each with its message

    again = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and again.output == f"database already at head: {revisions[-1]}\n"

    partial = f"sqlite:///{tmp_path / 'partial.sqlite3'}"
    command.upgrade(alembic_config(partial), revisions[1])
    out = CliRunner().invoke(cli, ["db", "upgrade"], env={**env, "PAYGATE_DATABASE_URL": partial})
    assert out.exit_code == 0, out.output
    rest = revisions[2:]
    assert out.output.splitlines()[0] == (f"database upgraded from {revisions[1]} to {revisions[-1]} (head): "
                                          f"{len(rest)} revision{'s' if len(rest) != 1 else ''} applied")
    assert [line.split()[0] for line in out.output.splitlines()[1:]] == rest


def test_db_upgrade_on_the_stacks_database_is_already_at_head(stack):
    out = CliRunner().invoke(cli, ["db", "upgrade"], env=cli_env(stack))
    assert out.exit_code == 0, out.output
    assert out.output == f"database already at head: {_revisions()[-1]}\n"
