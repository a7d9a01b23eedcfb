"""Qwen2.5-VL: as Qwen2-VL, but a video's temporal step is ``tokens_per_second * second_per_grid_ts``."""

from ._qwen_vl import ROPE_INDEX_ARGS, QwenVLAdapter


def absolute_time_intervals(model):
    tokens_per_second = model.config.vision_config.tokens_per_second

    def intervals(video_grid_thw, second_per_grid_ts):
        count = 0 if video_grid_thw is None else len(video_grid_thw)
        seconds = [1] * count if second_per_grid_ts is None else list(second_per_grid_ts)
        return [tokens_per_second * s for s in seconds]

    return intervals


ADAPTERS = {
    "qwen2_5_vl": QwenVLAdapter(
        native_frequency="chunked",
        default_section=(16, 24, 24),
        rope_index_args=(*ROPE_INDEX_ARGS[:4], "second_per_grid_ts", "attention_mask"),
        video_intervals=absolute_time_intervals,
        notes="chunked; video time step tokens_per_second x second_per_grid_ts; `mrope` is stock with "
        "`vision_advance: spatial` after a multi-group video",
    ),
}
