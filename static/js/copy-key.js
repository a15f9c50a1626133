// Progressive enhancement for the agents page: a "Copy key" button. Without JavaScript the
// button stays hidden and the key remains selectable in its read-only field.
"use strict";
document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy-target"));
  var status = button.parentElement.querySelector("[data-copy-status]");
  if (!field || !navigator.clipboard) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(
      function () {
        if (status) status.textContent = "Copied.";
      },
      function () {
        field.select();
        if (status) status.textContent = "Could not copy: the key is selected, copy it yourself.";
      }
    );
  });
});
