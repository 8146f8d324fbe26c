"""The `simpo-live` command: parse arguments, load the config, call one function. No logic lives here.

A `UserError` raised anywhere below is printed here as one `error: ...` message (no traceback; under torchrun by
one rank per node, not by every rank) and becomes the exit code; anything else is a bug and keeps its traceback.
Config warnings (inputs the run will not use) are printed once, by the leader.
"""

from __future__ import annotations

import sys

import click

from simpo_live.config import SimpoConfig
from simpo_live.config.help import annotated_config_yaml, config_options_help, split_config_args
from simpo_live.config.load import ResolvedConfig, resolve_config
from simpo_live.distributed.env import rank_info
from simpo_live.errors import UserError

OVERRIDES = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}


class UserErrorsGroup(click.Group):
    """The command group; turns a UserError into its message and exit code at the edge."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            if rank_info().is_node_leader:
                click.echo(e.describe(), err=True)
            ctx.exit(e.exit_code)


class ConfigCommand(click.Command):
    """A command taking `--config FILE` and `--KEY=VALUE` overrides; its --help lists every key with the value it
    will actually have for those arguments (schema, then the embedded preset, then the file and overrides)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["config_args"] = list(args)  # --help is eager: read the config arguments before click does
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        config_file, overrides = split_config_args(ctx.meta.get("config_args", []))
        formatter.write("\n" + config_options_help(config_file, overrides) + "\n")


@click.group(cls=UserErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SimPO preference training with periodic, host-data-parallel inference evals."""


def resolved_config(config_file: str | None, overrides: list[str]) -> ResolvedConfig:
    """The resolved config; its warnings are printed here, once (the leader), on stderr."""
    resolved = resolve_config(config_file, overrides)
    if rank_info().is_leader:
        for warning in resolved.warnings:
            click.echo(f"warning: {warning}", err=True)
    return resolved


def loaded_config(config_file: str | None, overrides: list[str]) -> SimpoConfig:
    return resolved_config(config_file, overrides).config


CONFIG_OPTION = click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                             help="YAML config merged over the embedded default preset.")


@main.command(cls=ConfigCommand, context_settings=OVERRIDES)
@CONFIG_OPTION
@click.option("--verbose", is_flag=True, help="Print every term of the memory plan before step 1 (default: one "
              "line, or every term when it does not fit).")
@click.pass_context
def train(ctx: click.Context, config_file: str | None, verbose: bool) -> None:
    """Train with SimPO (resumes when the run directory holds a checkpoint). Overrides: --KEY=VALUE."""
    from simpo_live.training_run import run_training

    sys.exit(run_training(loaded_config(config_file, ctx.args), verbose=verbose))


@main.command(cls=ConfigCommand, context_settings=OVERRIDES)
@CONFIG_OPTION
@click.pass_context
def config(ctx: click.Context, config_file: str | None) -> None:
    """Print the resolved config (default preset, then --config, then --KEY=VALUE overrides); a comment names the
    layer that chose each one-of key (the prompt source, the eval schedule...)."""
    click.echo(annotated_config_yaml(resolved_config(config_file, ctx.args)), nl=False)


@main.command()
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Local HF model directory.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), default=None,
              help="Prompt file: text (one per line) or JSONL with a 'prompt' field.")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, help="Use N synthetic prompts instead.")
@click.option("--max-new-tokens", required=True, type=click.IntRange(min=1), help="New tokens per sample.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="0 means greedy.")
@click.option("--top-p", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=1.0, show_default=True,
              help="Nucleus sampling mass.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True, help="Top-k cutoff; 0 disables.")
@click.option("--seed", type=int, default=0, show_default=True, help="Root of every sample's seed.")
@click.option("--n", "n_samples", type=click.IntRange(min=1), default=1, show_default=True, help="Samples per prompt.")
@click.option("--ignore-eos", is_flag=True, help="Ignore EOS and end-of-turn (--stop-token-id still stops).")
@click.option("--stop-token-id", "stop_token_ids", type=click.IntRange(min=0), multiple=True,
              help="Also stop at this token id (repeatable).")
@click.option("--no-chat-template", is_flag=True, help="Tokenise prompts as raw text (BOS included).")
@click.option("--step", type=click.IntRange(min=0), default=0, show_default=True,
              help="Step recorded in rows and mixed into seeds (used by the eval's subprocess isolation).")
@click.option("--max-seqs", type=click.IntRange(min=1), default=256, show_default=True, help="Engine: most sequences at once.")
@click.option("--max-pages", type=click.IntRange(min=1), default=None, help="Engine: KV cache size in pages.")
@click.option("--page-size", type=click.IntRange(min=1), default=16, show_default=True, help="Engine: page size in tokens.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
              help="Model dtype: auto is bf16 on CUDA, fp32 on CPU.")
@click.option("--engine-config", "engine_config_file", type=click.Path(dir_okay=False), default=None,
              help="JSON of the whole engine configuration (as the eval writes it); replaces --max-seqs, "
                   "--max-pages and --page-size.")
@click.option("--slice", "prompt_slice", default=None, metavar="START:END",
              help="Generate global prompts [START, END) of the file instead of this rank's share.")
@click.option("--host", default=None, metavar="I/P",
              help="Host index and count written in rows and the file name (default: RANK/WORLD_SIZE).")
def sample(**options) -> None:
    """Generate completions from a checkpoint; under torchrun each rank writes its contiguous slice."""
    from simpo_live.rollout.sample import run_sample_command

    sys.exit(run_sample_command(**options))


@main.command(cls=ConfigCommand, context_settings=OVERRIDES)
@CONFIG_OPTION
@click.option("--world-size", type=click.IntRange(min=1), default=1, show_default=True, help="Ranks of the run.")
@click.option("--device", "device_type", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Device kind (bf16 autocast and the eval's bf16 replica are the CUDA defaults).")
@click.option("--device-memory-gib", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Memory of one rank's device; default: what this machine has free.")
@click.pass_context
def plan(ctx: click.Context, config_file: str | None, world_size: int, device_type: str,
         device_memory_gib: float | None) -> None:
    """Per-rank memory plan of a run (parameters, gradients, optimizer, activations, logits, eval); exit 1 if it
    does not fit, listing the knobs that would. Overrides: --KEY=VALUE."""
    from simpo_live.plan.check import run_plan_command

    sys.exit(run_plan_command(loaded_config(config_file, ctx.args), world_size, device_type, device_memory_gib))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir: str) -> None:
    """Write RUN_DIR/report.html from the run directory."""
    from simpo_live.report.html import write_report
    from simpo_live.run_dir import require_run_dir

    require_run_dir(run_dir)
    click.echo(write_report(run_dir))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--merged", "out_dir", required=True, type=click.Path(), help="New directory for the merged model.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
              help="Merged weights' dtype; auto: the run's model.dtype.")
@click.option("--base", "base_dir", type=click.Path(file_okay=False), default=None,
              help="Base model directory; default: the one the adapters were trained on (adapter_config.json).")
def export(run_dir: str, out_dir: str, dtype: str, base_dir: str | None) -> None:
    """Merge a LoRA run's latest adapters into its base model and write a Hugging Face model directory."""
    from simpo_live.export import export_merged

    click.echo(export_merged(run_dir, out_dir, dtype, base_dir))


if __name__ == "__main__":
    main()
