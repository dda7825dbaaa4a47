// Reviewer page: jump the player to a timeline mark, and keep the score's total up to date.
// Without JavaScript the marks are plain buttons in a list and the server computes the total.

const player = document.getElementById("review-player");

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-seek]");
  if (!target || !player) return;
  const at = Number(target.dataset.seek);
  if (!Number.isFinite(at)) return;
  player.currentTime = at;
  player.focus();
});

const form = document.getElementById("score-form");
const total = document.getElementById("score-total");

function updateTotal() {
  const inputs = form.querySelectorAll('input[type="number"]');
  let sum = 0;
  let complete = true;
  inputs.forEach((input) => {
    const value = Number(String(input.value).replace(",", "."));
    if (input.value === "" || !Number.isFinite(value)) complete = false;
    else sum += value;
  });
  total.textContent = complete ? String(Math.round(sum * 100) / 100) : "–";
}

if (form && total) {
  form.addEventListener("input", updateTotal);
}
