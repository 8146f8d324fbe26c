"""Integer rounding shared by the engine (pages, chunks, buckets), the eval pre-flight and the memory plan."""


def ceil_div(numerator: int, denominator: int) -> int:
    """The smallest integer >= numerator / denominator (exact for ints of any size, unlike math.ceil of a float)."""
    return -(-numerator // denominator)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= value."""
    return ceil_div(value, multiple) * multiple
