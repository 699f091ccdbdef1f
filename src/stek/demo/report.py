"""What the demo shows a person: a summary in the terminal and pictures on disk."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from stek.demo.run import Outcome

CHANCE = {"classification": "accuracy 0.50 (two balanced classes)", "detection": "mAP@0.5 ≈ 0"}


def print_summary(console: Console, outcome: Outcome) -> None:
    console.rule("[bold]a day on the line")
    _print_ingest(console, outcome)
    _print_versions(console, outcome)
    _print_training(console, outcome)
    _print_models(console, outcome)
    console.print(f"\nPictures and logs: [bold]{outcome.output.resolve()}[/bold]")
    for path in outcome.files:
        console.print(f"  {path.name}")
    log = outcome.output / "events.jsonl"
    console.print(
        f"\nEvent log of the whole run: [bold]stek events --file {log}[/bold]"
        " (add --type job.progress, --subject <id>, ...)"
    )
    console.print(f"Done in {outcome.seconds:.0f} s.")


def _print_ingest(console: Console, outcome: Outcome) -> None:
    table = Table(title="ingest", show_header=False)
    table.add_row("uploaded", str(outcome.uploaded))
    for status, count in sorted(outcome.statuses.items()):
        table.add_row(status, str(count))
    for reason, count in sorted(outcome.reasons.items()):
        table.add_row(f"  rejected: {reason}", str(count))
    for filename, reason in outcome.refused:
        table.add_row(f"  refused at the API: {filename}", reason)
    console.print(table)


def _print_versions(console: Console, outcome: Outcome) -> None:
    for task_name, detail in outcome.versions.items():
        summary = detail["summary"]
        table = Table(title=f"{task_name} dataset {summary['dataset_id']} v{summary['version']}")
        table.add_column("split")
        table.add_column("images per class")
        for split, classes in sorted(summary.get("counts", {}).items()):
            table.add_row(
                split, ", ".join(f"{name} {count}" for name, count in sorted(classes.items()))
            )
        console.print(table)
        findings = _findings(detail.get("report") or {})
        if findings:
            console.print("  cleaning: " + "; ".join(findings))
    if outcome.planted_label_faults:
        planted = ", ".join(
            f"{name} {count}" for name, count in sorted(outcome.planted_label_faults.items())
        )
        console.print(
            f"  label faults planted in the import, by the rule that must find them: {planted}"
        )


def _findings(cleaning: dict[str, Any]) -> list[str]:
    rules = cleaning.get("rules", cleaning)
    findings = []
    items: Iterable[tuple[Any, Any]]
    if isinstance(rules, dict):
        items = rules.items()
    elif isinstance(rules, list):
        items = ((rule.get("rule", "?"), rule) for rule in rules)
    else:
        return []
    for name, rule in items:
        if not isinstance(rule, dict):
            continue
        found = rule.get("found", rule.get("count"))
        found = len(found) if isinstance(found, list) else found
        dropped = rule.get("dropped")
        dropped = len(dropped) if isinstance(dropped, list) else dropped
        if found:
            findings.append(
                f"{name} found {found}" + (f", dropped {dropped}" if dropped is not None else "")
            )
    return findings


def _print_training(console: Console, outcome: Outcome) -> None:
    table = Table(title="training (held-out validation split)")
    for column in ("job", "status", "epochs", "metrics", "chance level"):
        table.add_column(column)
    for task_name, job in outcome.jobs.items():
        metrics = _numbers(job.get("metrics", {}))
        table.add_row(
            f"{task_name} {job['job_id'][:8]}",
            job["status"] + (f": {job['error']}" if job.get("error") else ""),
            str(job.get("epochs_done")),
            metrics,
            CHANCE[task_name],
        )
    console.print(table)


def _print_models(console: Console, outcome: Outcome) -> None:
    table = Table(title="registry")
    for column in ("model", "versions", "aliases", "validation"):
        table.add_column(column)
    for task_name, model in outcome.models.items():
        validation = outcome.validations.get(task_name, {}).get("validation", {})
        table.add_row(
            model.get("name", task_name),
            ", ".join(str(v.get("version")) for v in model.get("versions", [])),
            ", ".join(f"{k} -> {v}" for k, v in (model.get("aliases") or {}).items()) or "-",
            f"{validation.get('split', '')} ({validation.get('images', 0)} images): "
            + _numbers(validation.get("metrics", {})),
        )
    console.print(table)
    if outcome.promotion:
        console.print(f"  promotion to production: {outcome.promotion}")
    if outcome.prediction:
        detections = outcome.prediction.get("detections", [])
        found = (
            ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections[:8])
            or "nothing above 0.3"
        )
        console.print(f"  prediction on a tray from machine-02: {found}")


def _numbers(metrics: dict[str, Any]) -> str:
    keys = ("accuracy", "map_50", "map_50_95", "precision", "recall")
    return ", ".join(
        f"{key} {metrics[key]:.3f}" for key in keys if isinstance(metrics.get(key), int | float)
    )


def plot_training_curves(jobs: dict[str, dict[str, Any]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(jobs), figsize=(5 * len(jobs), 3.5), squeeze=False)
    for axis, (task_name, job) in zip(axes[0], jobs.items(), strict=False):
        epochs = [report["epoch"] for report in job.get("epochs", [])]
        axis.plot(
            epochs, [r["train_loss"] for r in job.get("epochs", [])], marker="o", label="train loss"
        )
        metric = "accuracy" if task_name == "classification" else "map_50"
        twin = axis.twinx()
        twin.plot(
            epochs,
            [r.get("metrics", {}).get(metric, float("nan")) for r in job.get("epochs", [])],
            marker="s",
            color="tab:green",
            label=f"val {metric}",
        )
        twin.set_ylim(0, 1)
        axis.set_title(f"{task_name} ({job['request']['architecture']})")
        axis.set_xlabel("epoch")
        axis.legend(loc="upper left")
        twin.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    pyplot.close(figure)


def draw_detections(image_bytes: bytes, detections: list[dict[str, Any]], target: Path) -> None:
    from PIL import Image, ImageDraw

    picture = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    # Line-camera thumbnails are small; twice the size keeps the labels readable.
    scale = 2 if max(picture.size) < 512 else 1
    picture = picture.resize((picture.width * scale, picture.height * scale))
    canvas = ImageDraw.Draw(picture)
    colours = {"viable": (40, 200, 60), "non_viable": (230, 60, 40)}
    for detection in detections:
        box = [float(v) * scale for v in detection["box"]]
        colour = colours.get(detection["label"], (255, 255, 0))
        canvas.rectangle(box, outline=colour, width=2)
        canvas.text(
            (box[0] + 2, box[1] + 1), f"{detection['label']} {detection['score']:.2f}", fill=colour
        )
    picture.save(target)
