"""Result tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) mirroring the paper's."""
