// Evaluated by tests/browser/test_phone_layout.py in each page: null when the page fits its window, else why not.
() => {
  // The page overflows when the document is wider than the window. What makes it wider is content, not the
  // blocks it stretches: text that reaches past the right edge, or an element with no content of its own
  // (an image, a control, a fixed-width box) that does. Name the one reaching furthest, with its ancestors,
  // leaving out anything inside a box that scrolls or clips it.
  const doc = document.documentElement;
  const limit = window.innerWidth;
  if (doc.scrollWidth <= limit) return null;
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== document.body && a !== doc; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  const reach = (el) => {
    let right = -Infinity;
    let text = false;
    for (const node of el.childNodes) {
      if (node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      right = Math.max(right, range.getBoundingClientRect().right);
      text = true;
    }
    if (!text && el.children.length === 0) right = el.getBoundingClientRect().right;
    return right;
  };
  let culprit = null;
  let furthest = limit + 0.5;
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const right = reach(el);
    if (right > furthest && !clipped(el)) {
      culprit = el;
      furthest = right;
    }
  }
  const describe = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.classList.length) s += "." + [...el.classList].join(".");
    const testid = el.getAttribute("data-testid");
    if (testid) s += `[data-testid=${testid}]`;
    return s;
  };
  if (!culprit) return `scrollWidth ${doc.scrollWidth}px > ${limit}px`;
  const path = [];
  for (let a = culprit.parentElement; a && a !== document.body && path.length < 5; a = a.parentElement) {
    path.push(describe(a));
  }
  const text = (culprit.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
  const box = culprit.getBoundingClientRect();
  return `scrollWidth ${doc.scrollWidth}px > ${limit}px; furthest out: ${describe(culprit)} "${text}" ` +
    `(${Math.round(box.width)}px wide, reaching ${Math.round(furthest)}px) in ${path.join(" < ")}`;
}
