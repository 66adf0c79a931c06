"""The model summary at the start of fitting, without a FLOPs column that would read 0: Lightning
(2.6) counts FLOPs only through a module's `example_input_array`, which lightyard's tasks do not
set; the throughput callback measures the real count on the first batch and logs it."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichModelSummary as LightningRichModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size
from lightning.pytorch.utilities.model_summary import get_human_readable_count as readable

HIDDEN_COLUMNS = ("FLOPs",)


class RichModelSummary(LightningRichModelSummary):
    """Lightning's rich table of layers and parameter counts, minus the FLOPs it cannot count."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name not in HIDDEN_COLUMNS]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in columns[1:]:
            right = name in ("Params", "Params per Device", "In sizes", "Out sizes")
            table.add_column(name, justify="right" if right else "left")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)

        grid = Table.grid(expand=True)
        grid.add_column()
        frozen = total_parameters - trainable_parameters
        grid.add_row(f"[bold]Trainable params[/]: {readable(int(trainable_parameters))}")
        grid.add_row(f"[bold]Non-trainable params[/]: {readable(int(frozen))}")
        grid.add_row(f"[bold]Total params[/]: {readable(int(total_parameters))}")
        size = get_formatted_model_size(model_size)
        grid.add_row(f"[bold]Total estimated model params size (MB)[/]: {size}")
        modes = total_training_modes
        grid.add_row(f"[bold]Modules in train mode[/]: {modes.get('train', 0)}")
        grid.add_row(f"[bold]Modules in eval mode[/]: {modes.get('eval', 0)}")
        console.print(grid)
