// School console: add and remove exam subjects without a round trip to the server.
// Without JavaScript the same buttons post the form and the server adds or removes the row.

const form = document.getElementById("exam-form");
const list = document.getElementById("subjects");
const template = document.getElementById("subject-template");

function renumber() {
  const fieldsets = list.querySelectorAll("fieldset.subject");
  fieldsets.forEach((fieldset, index) => {
    fieldset.dataset.index = String(index);
    const number = fieldset.querySelector("[data-subject-number]");
    if (number) number.textContent = String(index + 1);
    const remove = fieldset.querySelector("[data-remove-subject]");
    if (remove) {
      remove.value = `remove_subject-${index}`;
      remove.hidden = fieldsets.length < 2;
    }
  });
}

let added = 0;

function addSubject() {
  added += 1;
  const html = template.innerHTML.replaceAll("__N__", `new${added}`);
  list.insertAdjacentHTML("beforeend", html);
  renumber();
  const fieldsets = list.querySelectorAll("fieldset.subject");
  fieldsets[fieldsets.length - 1].querySelector('input[name="subject_name"]')?.focus();
}

if (form && list && template) {
  form.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.id === "add-subject") {
      event.preventDefault();
      addSubject();
    } else if (button.hasAttribute("data-remove-subject")) {
      event.preventDefault();
      if (list.querySelectorAll("fieldset.subject").length > 1) {
        button.closest("fieldset.subject").remove();
        renumber();
      }
    }
  });
  renumber();
}
