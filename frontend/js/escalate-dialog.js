// "Talk to a person": a small modal dialog (native <dialog>: focus is trapped, Escape closes it) that asks
// for an optional email and reason, then hands them to the chat controller.

export function setupEscalation({ opener, dialog, form, email, reason, error, submit, cancel, onSubmit, afterClose }) {
  const showError = (message) => {
    error.textContent = message;
    error.hidden = !message;
  };

  opener.addEventListener("click", () => {
    showError("");
    submit.disabled = false;
    dialog.showModal();
    email.focus();
  });

  cancel.addEventListener("click", () => dialog.close("cancel"));
  dialog.addEventListener("close", () => afterClose?.());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!email.checkValidity()) {
      showError("That email address does not look right (or leave it empty).");
      email.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Opening…";
    showError("");
    try {
      await onSubmit({ email: email.value.trim(), reason: reason.value.trim() });
      reason.value = "";
      dialog.close("submit");
    } catch (err) {
      showError(`Could not open a ticket: ${err.message}`);
      submit.disabled = false;
    } finally {
      submit.textContent = "Open ticket";
    }
  });
}
