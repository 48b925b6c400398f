// "/" puts the cursor in the page's search field (its first search input), as on many
// sites; not while typing in a field, nor with a modifier key held.
document.addEventListener("keydown", function (event) {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  var target = event.target;
  if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
  var field = document.querySelector("input[type=search], input[name=q]");
  if (!field) return;
  event.preventDefault();
  field.focus();
  if (field.select) field.select();
});
