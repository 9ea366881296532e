"""Hot loops of the query path, behind one module so a GPU (torch) path can be added beside
the CPU one: lookup-table scans, exact re-rank from float16 rows, Chamfer, FDE batch encoding."""
