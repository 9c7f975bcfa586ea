"""The homework's write-up regenerated from the stages' outputs.

inputs (the stages' metrics and plot files) -> sections (one per problem, as structured
blocks) -> render (Markdown and self-contained HTML from the same blocks).
"""
