// Shared behaviour of every page. Plain ES module, no inline script (strict CSP).

// User form: show only the unit field that fits the chosen role.
function bindRoleFields(select) {
  const form = select.form;
  const update = () => {
    for (const field of form.querySelectorAll("[data-for-role]")) {
      const shown = field.dataset.forRole === select.value;
      field.hidden = !shown;
      for (const input of field.querySelectorAll("select, input")) input.disabled = !shown;
    }
  };
  select.addEventListener("change", update);
  update();
}

for (const select of document.querySelectorAll("[data-role-select]")) bindRoleFields(select);
