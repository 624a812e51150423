// The console needs no script: this only keeps each progress slider and its number together.
document.querySelectorAll("input[data-number]").forEach(function (slider) {
  var number = document.getElementById(slider.getAttribute("data-number"));
  if (!number) { return; }
  slider.addEventListener("input", function () { number.value = slider.value; });
  number.addEventListener("input", function () { if (number.value !== "") { slider.value = number.value; } });
});
