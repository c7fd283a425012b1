"""The one path from a model to files on disk: render and prove every target, the render cache,
the output folder (manifest, lock), generate and check, the fuzzer and derive pdf.
"""
