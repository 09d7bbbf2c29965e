"""The base layer under training, export and the runtime: one-line user errors
(`errors`), atomic writes and target checks (`files`), the CLI wrapper (`command`), precisions
(`precision`), CPU facts (`cpu`), image grids and PNGs (`images`), the kind of a sample
(`samples`), the typed scores of generated samples (`scores`) and the names of the files that
one part writes and another reads (`artifacts`).

It imports nothing of gan-edge's outside itself and needs only numpy, Pillow and click, so
the device wheel (runtime/ alone) carries it and training and export build on it.
"""
