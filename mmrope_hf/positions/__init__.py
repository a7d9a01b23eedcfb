"""Position designs (one module per family), the layout parser, the per-row and batch builders."""
