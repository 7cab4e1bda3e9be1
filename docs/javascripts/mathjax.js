// MathJax set-up for pymdownx.arithmatex (generic mode). MathJax itself is
// loaded by the reader's browser only if available; pages read fine without it.
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
};
