// keyshare portal: progressive enhancement only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Put the cursor on the first field the server flagged.
  const bad = document.querySelector("[aria-invalid=true]");
  if (bad) bad.focus();
  // Select a secret shown once, to make copying it easy.
  const secret = document.getElementById("new-secret");
  if (secret) secret.addEventListener("focus", () => secret.select());
});
