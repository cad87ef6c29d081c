// Evaluated by tests/browser/test_phone_layout.py in each page: null when the page fits its window, else why not.
() => {
  // The page overflows when the document is wider than the window; name the widest element that sticks out
  // of the window (one whose children all fit: the cause, not the ancestors it stretches) and is not inside
  // a box that scrolls or clips it.
  const doc = document.documentElement;
  const limit = window.innerWidth;
  if (doc.scrollWidth <= limit) return null;
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== document.body && a !== doc; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  // How far right an element reaches: its box, or the text and children that overflow it.
  const reach = (el) => {
    const r = el.getBoundingClientRect();
    return Math.max(r.right, r.left + el.scrollWidth);
  };
  const sticksOut = (el) => el.getBoundingClientRect().width > 0 && reach(el) > limit + 0.5 && !clipped(el);
  const width = (el) => reach(el) - el.getBoundingClientRect().left;
  let worst = null;
  for (const el of document.body.querySelectorAll("*")) {
    if (!sticksOut(el) || [...el.children].some(sticksOut)) continue;
    if (!worst || width(el) > width(worst)) worst = el;
  }
  const describe = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.classList.length) s += "." + [...el.classList].join(".");
    const testid = el.getAttribute("data-testid");
    if (testid) s += `[data-testid=${testid}]`;
    return s;
  };
  if (!worst) return `scrollWidth ${doc.scrollWidth}px > ${limit}px`;
  const path = [];
  for (let a = worst.parentElement; a && a !== document.body && path.length < 4; a = a.parentElement) path.push(describe(a));
  const text = (worst.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
  return `scrollWidth ${doc.scrollWidth}px > ${limit}px; widest: ${describe(worst)} "${text}" ` +
    `(${Math.round(width(worst))}px wide, reaching ${Math.round(reach(worst))}px) in ${path.join(" < ")}`;
}
