"""`arcjobs prompt`: print the exact messages the model gets for one task.

Researchers need to see what the model sees: the same `build_messages` the infer step uses,
with the pre-filled assistant prefix as the last message. Without a shuffle or augmentation
seed, train pairs keep their stored order and no augmentation is applied.
"""

from __future__ import annotations

import json

import click

from arcjobs.errors import UserError


@click.command()
@click.option(
    "--dataset", required=True, help="Built-in name (arc-agi-1/evaluation, ...) or a path."
)
@click.option("--task", "task_id", required=True, help="Task id.")
@click.option("--solutions", default=None, help="Kaggle solutions JSON for a file dataset.")
@click.option("--test-index", default=0, show_default=True, help="Which test input (0-based).")
@click.option(
    "--shuffle-seed", type=int, default=None, help="Shuffle the train pairs with this seed."
)
@click.option(
    "--augment-seed", type=int, default=None, help="Apply a random augmentation with this seed."
)
@click.option("--permute-black", is_flag=True, help="Let the augmentation move black (0) too.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {role, content}.")
def prompt(
    dataset: str,
    task_id: str,
    solutions: str | None,
    test_index: int,
    shuffle_seed: int | None,
    augment_seed: int | None,
    permute_black: bool,
    as_json: bool,
) -> None:
    """Print the messages the model gets for TASK of DATASET (system, user, assistant prefix)."""
    import numpy as np

    from arcjobs.arc.augment import Augmentation
    from arcjobs.arc.prompts import ASSISTANT_PREFIX, build_messages
    from arcjobs.arc.tasks import load_dataset

    task = load_dataset(dataset, task_ids=[task_id], solutions=solutions)[task_id]
    if not 0 <= test_index < len(task.test_inputs):
        raise UserError(
            f"{dataset}: task {task_id} has {len(task.test_inputs)} test input(s); "
            f"--test-index {test_index} is out of range"
        )
    aug = None
    if augment_seed is not None:
        aug = Augmentation.random(np.random.default_rng(augment_seed), permute_black=permute_black)
        click.echo(f"augmentation: {json.dumps(aug.to_dict())}", err=True)
    messages = build_messages(task, test_index, aug, shuffle_seed)
    messages.append({"role": "assistant", "content": ASSISTANT_PREFIX})
    if as_json:
        click.echo(json.dumps(messages, indent=2))
        return
    for m in messages:
        click.echo(f"===== {m['role']} =====\n{m['content']}\n")
