"""The ``ganzoo`` command line.

Exit status: 0 on success, 2 on a user error (one line on stderr, no traceback,
nothing written), 1 on a runtime failure (a clear message; the traceback goes to
the run directory's ``error.log`` when there is one).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ._errors import GanzooError

log = logging.getLogger("ganzoo")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise GanzooError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganzoo", description="A plugin-based GAN zoo.")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    train = commands.add_parser("train", help="train a recipe")
    train.add_argument("recipe", type=Path, help="YAML recipe")
    train.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override recipe values, e.g. train.kimg=10",
    )
    train.add_argument(
        "--run-dir", type=Path, help="run directory (default: runs/NAME-HASH)"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the run directory from its last checkpoint",
    )
    train.add_argument(
        "--progress",
        choices=("auto", "bar", "lines"),
        default="auto",
        help="progress bar or plain lines (auto: a bar on a terminal)",
    )
    train.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train with DistributedDataParallel in N processes on this machine "
        "(starts torchrun; for several machines, run torchrun yourself)",
    )

    evaluate = commands.add_parser("eval", help="train if needed, then score a recipe")
    evaluate.add_argument("recipe", type=Path, help="YAML recipe")
    evaluate.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override recipe values, e.g. eval.n_fake=2000",
    )
    evaluate.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train and score this many seeds (train.seed, +1, ...)",
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print the record as JSON"
    )
    evaluate.add_argument(
        "--retrain",
        action="store_true",
        help="train again even if a finished run exists",
    )
    evaluate.add_argument("--checkpoint", type=Path, help="score this checkpoint file")
    evaluate.add_argument("--run-dir", type=Path, help="score this finished run")
    evaluate.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where records go (default: leaderboard/results)",
    )
    evaluate.add_argument(
        "--progress", choices=("auto", "bar", "lines"), default="auto"
    )

    metrics = commands.add_parser("metrics", help="score two sets without training")
    metrics.add_argument(
        "real", help="run dir, image folder, .npy/.npz or data set[:split]"
    )
    metrics.add_argument(
        "fake", help="run dir, image folder, .npy/.npz or data set[:split]"
    )
    metrics.add_argument("--json", action="store_true", help="print JSON")
    metrics.add_argument(
        "--feature-extractor", help="extractor name (default: by data)"
    )
    metrics.add_argument(
        "--metrics", help="comma-separated metric names (default: by data)"
    )
    metrics.add_argument(
        "--n",
        type=int,
        default=10000,
        help="samples generated from a run directory (default 10000)",
    )
    metrics.add_argument(
        "--seed", type=int, default=0, help="seed of generated samples"
    )

    board = commands.add_parser("leaderboard", help="rank the evaluation records")
    board.add_argument("--dataset", help="only this data set")
    board.add_argument("--metric", help="rank by this metric (default: fid, or modes)")
    board.add_argument("--format", choices=("md", "html", "json"), default="md")
    board.add_argument(
        "--out",
        type=Path,
        help="write here (html default: "
        "leaderboard/site/index.html; md/json default: stdout)",
    )
    board.add_argument(
        "--results", type=Path, help="records folder (default: leaderboard/results)"
    )

    versus = commands.add_parser("compare", help="runs or recipes side by side")
    versus.add_argument(
        "items", nargs="+", help="record files, run directories or recipes"
    )
    versus.add_argument("--json", action="store_true", help="print JSON")
    versus.add_argument("--results", type=Path, help="records folder")

    sample = commands.add_parser(
        "sample",
        help="samples, class grids, latent walks or nearest real neighbours of a run",
    )
    sample.add_argument("run_dir", type=Path, help="run directory")
    sample.add_argument(
        "--n",
        type=int,
        help="number of samples (default 64; per row with --class-grid: 8; "
        "pairs with --neighbours: 16)",
    )
    sample.add_argument("--seed", type=int, default=0, help="seed of the latents")
    sample.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output file: .png (grid or scatter) or .npy (raw samples); "
        "with --interpolate also .gif",
    )
    sample.add_argument(
        "--checkpoint",
        default="final",
        help="final, last, best, or a checkpoint path (default: final)",
    )
    sample.add_argument(
        "--no-ema",
        action="store_true",
        help="use the trained generator instead of its moving average",
    )
    sample.add_argument(
        "--class",
        dest="label",
        type=int,
        metavar="K",
        help="class-conditional runs: samples of class K only",
    )
    view = sample.add_mutually_exclusive_group()
    view.add_argument(
        "--class-grid",
        action="store_true",
        help="class-conditional runs: one row per class, one latent per column",
    )
    view.add_argument(
        "--interpolate",
        choices=("lerp", "slerp"),
        help="walk between latents (straight or spherical), one path per row",
    )
    view.add_argument(
        "--neighbours",
        action="store_true",
        help="each sample beside its nearest training image, closest pair first",
    )
    walk = sample.add_argument_group("with --interpolate")
    walk.add_argument(
        "--steps", type=int, help="latents per path, endpoints included (default 8)"
    )
    walk.add_argument(
        "--rows",
        type=int,
        help="paths; row r walks from seed SEED+2r to SEED+2r+1 "
        "(default 4, or one per class)",
    )
    walk.add_argument(
        "--from-seed", type=int, metavar="A", help="one path, from seed A's sample"
    )
    walk.add_argument(
        "--to-seed", type=int, metavar="B", help="to seed B's sample (with --from-seed)"
    )
    walk.add_argument(
        "--gif",
        action="store_true",
        help="also write an animated GIF beside OUT (there and back)",
    )

    translate = commands.add_parser(
        "translate", help="translate your own images with a trained pix2pix run"
    )
    translate.add_argument("run_dir", type=Path, help="run directory of a pix2pix run")
    translate.add_argument("input_dir", type=Path, help="folder of input images")
    translate.add_argument(
        "output_dir", type=Path, help="folder for the outputs, under the input names"
    )
    translate.add_argument(
        "--checkpoint",
        default="final",
        help="final, last, best, or a checkpoint path (default: final)",
    )
    translate.add_argument(
        "--no-ema",
        action="store_true",
        help="use the trained generator instead of its moving average",
    )

    reference = commands.add_parser("reference", help="print the recipe reference")
    reference.add_argument("--out", type=Path, help="write it here instead of stdout")

    plugins = commands.add_parser("plugins", help="list the registered plugins")
    plugins.add_argument("--kind", help="only this kind")
    plugins.add_argument("--json", action="store_true", help="print one JSON object")

    new = commands.add_parser("new", help="scaffold a plugin package")
    new.add_argument("kind", help="architecture, loss, regularizer, constraint, ...")
    new.add_argument("name", help="the plugin's kebab-case name, e.g. my-loss")
    new.add_argument(
        "--dir", type=Path, help="folder to create (default: ./ganzoo-NAME)"
    )

    check = commands.add_parser("check", help="put plugins through their contract")
    check.add_argument(
        "names", nargs="+", metavar="NAME", help="plugin name, or KIND:NAME"
    )
    return parser


_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT}


def main(argv: Sequence[str] | None = None) -> int:
    handler = _configure_logging()
    context: dict[str, Path] = {}
    process = _torchrun_process()  # (rank, world size, local rank) or None
    try:
        args = build_parser().parse_args(argv)
        # With --json, stdout carries the JSON alone, for pipes and jq.
        handler.progress_to_stderr = bool(getattr(args, "json", False))
        if process is not None and args.command != "train":
            raise GanzooError(
                f"only `ganzoo train` runs in several processes; run `ganzoo "
                f"{args.command}` on its own, without torchrun"
            )
        if args.command == "train":
            if args.nproc is not None and args.nproc != 1:
                return _train_in_processes(args, sys.argv[1:] if argv is None else argv)
            return _train(args, context)
        if args.command == "sample":
            return _sample(args)
        if args.command == "translate":
            return _translate(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "metrics":
            return _metrics(args)
        if args.command == "reference":
            return _reference(args)
        if args.command == "leaderboard":
            return _leaderboard(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "new":
            return _new(args)
        if args.command == "check":
            return _check(args)
        return _plugins(args)
    except GanzooError as error:
        # The processes of a distributed run share the recipe and the files, so
        # the first one on each machine speaks for all of them.
        if process is None or process[2] == 0:
            print(f"ganzoo: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # training says what it saved, if anything
        said = f": {error}" if str(error) else ""
        signum = getattr(error, "signum", signal.SIGINT)
        how = "terminated" if signum == signal.SIGTERM else "interrupted"
        if process is None or process[0] == 0:
            print(f"ganzoo: {how}{said}", file=sys.stderr)
        return 128 + signum
    except Exception as error:  # the last line of defence: report, do not dump
        where = context.get("run_dir")
        if isinstance(error, OSError) and error.filename:
            # Disk full, file too large, read-only folder: a runtime failure
            # (exit 1) that names the file; nothing half-written is left.
            verb = "cannot write " if error.errno in _WRITE_ERRNOS else ""
            detail = f"{verb}{error.filename}: {error.strerror}"
        else:
            detail = f"{type(error).__name__}: {error}"
        # Each failing process of a distributed run reports, naming its rank.
        name, label = "error.log", ""
        if process is not None:
            label = f"rank {process[0]} of {process[1]}: "
            name = f"error-rank{process[0]}.log" if process[0] else name
        if where is not None and where.is_dir():
            try:
                (where / name).write_text(traceback.format_exc())
                detail += f" (traceback in {where / name})"
            except OSError:  # the disk that failed the run may refuse this too
                pass
        print(f"ganzoo: failed: {label}{detail}", file=sys.stderr)
        return 1


def _torchrun_process() -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` of a process of a distributed run
    that torchrun started; None for a process on its own."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return None
    return (rank, size, local_rank) if size > 1 else None


class _ConsoleHandler(logging.Handler):
    """Progress to stdout, warnings to stderr (looked up per record, not bound once)."""

    progress_to_stderr = False

    def emit(self, record: logging.LogRecord) -> None:
        to_stderr = self.progress_to_stderr or record.levelno >= logging.WARNING
        stream = sys.stderr if to_stderr else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def _configure_logging() -> _ConsoleHandler:
    handler = _ConsoleHandler()
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("matplotlib", "PIL", "urllib3", "wandb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


def _train(args: argparse.Namespace, context: dict[str, Path]) -> int:
    from .recipes import load_recipe
    from .training import default_run_dir, train_recipe
    from .training._distributed import session

    recipe = load_recipe(args.recipe, args.overrides)
    run_dir = args.run_dir or default_run_dir(recipe)
    context["run_dir"] = run_dir
    show_bar = _show_bar(args.progress)
    with session():  # under torchrun: joins the run's process group, then leaves
        final = train_recipe(recipe, run_dir, resume=args.resume, show_bar=show_bar)
    log.info("done: %s", final)
    return 0


def _train_in_processes(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``ganzoo train --nproc N``: the same command in N processes, by torchrun.

    The recipe, the split of its batch and the run directory are checked here
    first, so that a mistake is one line before any process starts.
    """
    from .recipes import load_recipe
    from .training import default_run_dir
    from .training._distributed import check_batch_split, launch, without_option
    from .training._rundir import check_run_dir

    if args.nproc < 1:
        raise GanzooError(f"--nproc must be at least 1, got {args.nproc}")
    if _torchrun_process() is not None or "TORCHELASTIC_RUN_ID" in os.environ:
        raise GanzooError(
            "--nproc starts torchrun itself; in a process that torchrun started, "
            "leave it out"
        )
    recipe = load_recipe(args.recipe, args.overrides)
    try:
        check_batch_split(recipe.config["train"]["batch_size"], args.nproc)
    except GanzooError as error:
        file, line = recipe.locate("train.batch_size")
        raise error.at(file=file or recipe.source, line=line) from None
    check_run_dir(recipe, args.run_dir or default_run_dir(recipe), resume=args.resume)

    result = launch(without_option(list(argv), "--nproc"), args.nproc)
    if result.exit_status == 1:
        print(f"ganzoo: failed: {result.describe()}", file=sys.stderr)
    return result.exit_status


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_recipe
    from .evaluation._report import format_record
    from .leaderboard import DEFAULT_RESULTS, write_record

    if args.seeds < 1:
        raise GanzooError(f"--seeds must be at least 1, got {args.seeds}")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise GanzooError(f"--checkpoint: file not found: {args.checkpoint}")
    show_bar = _show_bar(args.progress)
    record = evaluate_recipe(
        args.recipe,
        args.overrides,
        seeds=args.seeds,
        retrain=args.retrain,
        run_dir=args.run_dir,
        checkpoint=args.checkpoint,
        show_bar=show_bar,
    )
    results = args.results or DEFAULT_RESULTS
    _keep_sample_grids(record, results.parent / "samples")
    path = write_record(record, results)
    record["record"] = str(path)
    print(json.dumps(record, indent=2) if args.json else format_record(record))
    if record["status"] != "ok":
        print(f"ganzoo: failed: {'; '.join(record.get('errors', []))}", file=sys.stderr)
        return 1
    return 0


def _show_bar(progress: str) -> bool | None:
    """``--progress``: a bar, plain lines, or (auto) a bar only on a terminal."""
    return {"auto": None, "bar": True, "lines": False}[progress]


def _keep_sample_grids(record: dict, folder: Path) -> None:
    """Copy each seed's last snapshot grid beside the records (runs are not kept)."""
    from .leaderboard import safe_name
    from .training._checkpoint import write_bytes_atomic

    for seed in record["seeds"]:
        run_dir = Path(seed["run_dir"]) if seed.get("run_dir") else None
        grids = (
            sorted(run_dir.glob("fakes-kimg*.png"))
            if run_dir and run_dir.is_dir()
            else []
        )
        if grids:
            folder.mkdir(parents=True, exist_ok=True)
            name = safe_name(
                f"{record['name']}-{record['recipe_hash'][:10]}-seed{seed['seed']}"
            )
            target = folder / f"{name}.png"
            write_bytes_atomic(target, grids[-1].read_bytes())  # never half a PNG
            seed["samples"] = str(target)


def _leaderboard(args: argparse.Namespace) -> int:
    from .evaluation._scoring import SCORE_KEYS
    from .leaderboard import DEFAULT_RESULTS, build_standings, read_records
    from .leaderboard._render import render_html, render_json, render_markdown

    # A folder not written yet is an empty board: it may be read before the
    # first record is written.
    records = read_records(args.results or DEFAULT_RESULTS)
    if args.metric is not None and records:
        scored = [key for key in SCORE_KEYS if any(key in r for r in records)]
        if args.metric not in scored:
            raise GanzooError(
                f"--metric: no record has a score {args.metric!r}; scores in the "
                f"records: {', '.join(scored) or 'none'}"
            )
    standings = build_standings(records, dataset=args.dataset, metric=args.metric)
    if args.dataset and not standings.datasets():
        known = sorted({r.get("dataset", "?") for r in records})
        raise GanzooError(
            f"--dataset: no record for {args.dataset!r}; data sets with "
            f"records: {', '.join(known) or 'none'}"
        )
    if args.format == "html":
        out = args.out or Path("leaderboard") / "site" / "index.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        render_html(standings, out)
        log.info("wrote %s", out)
        return 0
    base = args.out.parent if args.out is not None else Path.cwd()
    text = (
        render_markdown(standings, base)
        if args.format == "md"
        else render_json(standings)
    )
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        log.info("wrote %s", args.out)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .leaderboard import DEFAULT_RESULTS, compare, find_records

    records = find_records(args.items, args.results or DEFAULT_RESULTS)
    result = compare(records)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    names = result["runs"]
    width = max(len(n) for n in names) + 2
    print(f"{'':<22}" + "".join(f"{n:>{width}}" for n in names))
    for section in ("metrics", "training", "recipe_differences"):
        if result[section]:
            print(f"{section.replace('_', ' ')}:")
        for key, values in result[section].items():
            shown = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
            print(f"  {key:<20}" + "".join(f"{s:>{width}}" for s in shown))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from .evaluation._report import format_scores
    from .evaluation._sides import score_sides

    names = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    result = score_sides(
        args.real,
        args.fake,
        extractor=args.feature_extractor,
        metrics=names,
        n=args.n,
        seed=args.seed,
    )
    print(json.dumps(result, indent=2) if args.json else format_scores(result))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from .training import _latent, generate, load_generator, save_samples
    from .training._conditioning import takes_labels

    # Every flag is checked before the run is read, so a mistake writes nothing.
    suffixes = (".png", ".npy")
    if args.interpolate is not None:
        suffixes = (".png", ".gif", ".npy")
    elif args.neighbours:
        suffixes = (".png",)
    if args.out.suffix not in suffixes:
        raise GanzooError(
            f"--out must end in {' or '.join(suffixes)} here, got {args.out}"
        )
    if args.n is not None and args.n < 1:
        raise GanzooError(f"--n must be at least 1, got {args.n}")
    walk_flags = {
        "--steps": args.steps,
        "--rows": args.rows,
        "--from-seed": args.from_seed,
        "--to-seed": args.to_seed,
        "--gif": True if args.gif else None,
    }
    if args.interpolate is None:
        for flag, value in walk_flags.items():
            if value is not None:
                raise GanzooError(f"{flag} applies only with --interpolate lerp|slerp")
    else:
        if args.n is not None:
            raise GanzooError(
                "--n does not apply to --interpolate: give --rows and --steps"
            )
        if args.steps is not None and args.steps < 2:
            raise GanzooError(
                f"--steps must be at least 2 (the two endpoints), got {args.steps}"
            )
        if args.rows is not None and args.rows < 1:
            raise GanzooError(f"--rows must be at least 1, got {args.rows}")
        if (args.from_seed is None) != (args.to_seed is None):
            raise GanzooError("--from-seed and --to-seed go together")
        if args.from_seed is not None and args.rows is not None:
            raise GanzooError(
                "--rows does not apply with --from-seed and --to-seed (one path)"
            )
    if args.class_grid and args.label is not None:
        raise GanzooError("--class-grid shows every class; --class picks one")

    loaded = load_generator(args.run_dir, args.checkpoint, ema=not args.no_ema)
    if args.label is not None:
        try:
            _latent.check_classes(loaded, [args.label])
        except GanzooError as error:
            raise error.at(key="--class") from None

    if args.class_grid:
        n = args.n or 8
        try:
            rows = _latent.class_grid(loaded, n, seed=args.seed)
        except GanzooError as error:
            raise error.at(key="--class-grid") from None
        _latent.save_rows(rows, loaded.shape, args.out)
        log.info(
            "wrote %d classes x %d samples to %s (row k is class k; a column "
            "shares its latent)",
            len(rows),
            n,
            args.out,
        )
        return 0

    if args.interpolate is not None:
        pairs, labels = _latent.walk_plan(
            takes_labels(loaded.generator),
            seed=args.seed,
            rows=args.rows,
            from_seed=args.from_seed,
            to_seed=args.to_seed,
            label=args.label,
        )
        steps = args.steps or 8
        rows = _latent.interpolation_rows(
            loaded, pairs, steps, args.interpolate, labels
        )
        written = _latent.save_walks(
            loaded, rows, args.out, gif=args.gif, mode=args.interpolate, seed=args.seed
        )
        ways = ", ".join(f"{a}->{b}" for a, b in pairs)
        if labels is not None:
            ways = ", ".join(
                f"{a}->{b} (class {k})" for (a, b), k in zip(pairs, labels, strict=True)
            )
        log.info(
            "wrote %s: %s walks of %d steps between the samples of seeds %s",
            " and ".join(map(str, written)),
            args.interpolate,
            steps,
            ways,
        )
        return 0

    n = args.n or (16 if args.neighbours else 64)
    labels = None if args.label is None else torch.full((n,), args.label)
    samples = generate(loaded, n, seed=args.seed, labels=labels)
    if args.neighbours:
        found = _latent.find_neighbours(loaded, samples, seed=args.seed)
        _latent.save_neighbours(found, args.out)
        log.info(
            "wrote %d sample | nearest training image pairs, closest first, to %s",
            n,
            args.out,
        )
        log.info("%s", found.summary())
        return 0
    save_samples(loaded, samples, args.out)
    log.info("wrote %d samples to %s", n, args.out)
    return 0


def _translate(args: argparse.Namespace) -> int:
    from ._translate import translate_folder

    written = translate_folder(
        args.run_dir,
        args.input_dir,
        args.output_dir,
        checkpoint=args.checkpoint,
        ema=not args.no_ema,
    )
    log.info("translated %d images into %s", len(written), args.output_dir)
    return 0


def _reference(args: argparse.Namespace) -> int:
    from ._reference import render_reference
    from ._registry import build_registry

    text = render_reference(build_registry())
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
        log.info("wrote %s", args.out)
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from ._plugin import KINDS
    from ._registry import build_registry

    registry = build_registry()
    if args.kind is not None and args.kind not in KINDS:
        from ._options import closest

        near = closest(args.kind, KINDS)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise GanzooError(
            f"--kind: unknown kind {args.kind!r}{hint}; kinds are: {', '.join(KINDS)}"
        )
    kinds = [args.kind] if args.kind else list(KINDS)

    listing: dict[str, list[dict]] = {}
    for kind in kinds:
        listing[kind] = []
        for entry in registry.all_entries(kind):
            item = {
                "name": entry.name,
                "origin": entry.origin,
                "summary": entry.summary,
            }
            if len(registry.entries[kind][entry.name]) > 1:
                item["error"] = "name registered more than once"
            listing[kind].append(item)
    listing["broken"] = [
        {
            "name": problem.origin.split(" (")[0],
            "origin": problem.origin,
            "error": problem.message,
        }
        for problem in registry.problems
    ]

    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind in kinds:
        print(f"{kind}:")
        for item in listing[kind]:
            mark = "  [DUPLICATE]" if "error" in item else ""
            print(f"  {item['name']:<24} {item['summary']}{mark}")
            print(f"  {'':<24} from {item['origin']}")
    if listing["broken"]:
        print("broken:")
        for item in listing["broken"]:
            print(f"  {item['origin']}: {item['error']}")
    return 0


def _new(args: argparse.Namespace) -> int:
    from ._scaffold import scaffold

    written = scaffold(args.kind, args.name, args.dir)
    folder = written[0].parent
    for path in written:
        print(f"wrote {path}")
    print(f"next: pip install -e {folder} && ganzoo check {args.name}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .testing import check_names

    reports = check_names(args.names)
    for report in reports:
        print(report.line())
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
