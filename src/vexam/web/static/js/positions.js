// Places elements whose position depends on data (timeline marks): the server writes
// data-left / data-width as percentages, because the Content-Security-Policy allows no
// style="..." attributes, while styles set from a static script are allowed.
for (const element of document.querySelectorAll("[data-left], [data-width]")) {
  const { left, width } = element.dataset;
  if (left !== undefined && Number.isFinite(Number(left))) element.style.left = `${Number(left)}%`;
  if (width !== undefined && Number.isFinite(Number(width))) element.style.width = `${Number(width)}%`;
}
