"""The `tfcaf` command line. Each stage registers its own verbs; heavy imports happen inside them."""

from __future__ import annotations

import sys

import typer

from tfcaf.errors import TfcafError

app = typer.Typer(
    name="tfcaf",
    help="LLM-written training-free credit assignment functions: generate, vet, review, approve, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print tfcaf's version and the versions of the packages that decide results."""
    import json

    from tfcaf.provenance import versions

    print(json.dumps(versions(), indent=2))


def _register_all() -> None:
    from tfcaf import artifacts_cli, plugins_cli
    from tfcaf.evaluator import cli as evaluator_cli
    from tfcaf.generator import cli as generator_cli
    from tfcaf.generator.tuning import cli as tuning_cli
    from tfcaf.sandbox import cli as sandbox_cli
    from tfcaf.tasks import cli as tasks_cli
    from tfcaf.trainer import cli as trainer_cli
    from tfcaf.trainer import sweep_cli

    for module in (tasks_cli, sandbox_cli, generator_cli, tuning_cli, evaluator_cli, trainer_cli, sweep_cli,
                   artifacts_cli, plugins_cli):
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning expected errors into one line and an exit code."""
    try:
        result = app(args=argv, standalone_mode=False)
    except TfcafError as err:
        from tfcaf.display import inert

        # a message can carry text from a candidate or a store file (a rejection reason): shown inert
        print(f"tfcaf: error: {inert(err)}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("tfcaf: aborted", file=sys.stderr)
        return 130
    except Exception as err:  # click usage errors arrive as ClickException subclasses
        import click

        click_errors, usage_errors = (click.ClickException,), (click.UsageError,)
        try:  # typer >= 0.2x raises its vendored copy of click's exceptions
            from typer._click import exceptions as vendored

            click_errors, usage_errors = click_errors + (vendored.ClickException,), usage_errors + (vendored.UsageError,)
        except ImportError:
            pass
        if isinstance(err, click_errors):
            err.show()
            return 2 if isinstance(err, usage_errors) else 1
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
