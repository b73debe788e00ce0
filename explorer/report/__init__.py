"""Reports people open: one document model rendered to HTML and Markdown (`document`), shared
figure rendering (`figures`), terminal tables (`table`), and the reports of one architecture
(`score`) and of a search (`search`, `search_figures`)."""

from explorer.report.document import Block, Heading, Items, Picture, Table, Text, to_html, to_markdown, write_report
from explorer.report.score import score_report
from explorer.report.search import COMPARISON_HEADER, comparison_rows, search_report

__all__ = [
    "COMPARISON_HEADER",
    "Block",
    "Heading",
    "Items",
    "Picture",
    "Table",
    "Text",
    "comparison_rows",
    "score_report",
    "search_report",
    "to_html",
    "to_markdown",
    "write_report",
]
