// dcc.Upload refuses a file over its max_size in the browser, with no callback and no word
// to the user. Say so in #upload-refused, in the words the server uses for smaller excesses
// (frontend/uploads.py); any other upload or a random prediction clears it.
(function () {
  "use strict";
  function megabytes(n) {
    return (n / (1024 * 1024)).toFixed(1) + " MB";
  }
  function show(files) {
    var note = document.getElementById("upload-refused");
    if (!note || !files || !files.length) {
      return;
    }
    var file = files[0];
    note.textContent = file.size > Number(note.dataset.maxSize)
      ? file.name + " is too large (" + megabytes(file.size) + "); the limit is " +
        megabytes(Number(note.dataset.limit)) + "."
      : "";
  }
  function within(event, selector) {
    return event.target && event.target.closest && event.target.closest(selector);
  }
  document.addEventListener("change", function (event) {
    if (within(event, "#upload-image")) {
      show(event.target.files);
    }
  }, true);
  document.addEventListener("drop", function (event) {
    if (within(event, "#upload-image")) {
      show(event.dataTransfer && event.dataTransfer.files);
    }
  }, true);
  document.addEventListener("click", function (event) {
    var note = document.getElementById("upload-refused");
    if (note && within(event, "#predict-random")) {
      note.textContent = "";
    }
  }, true);
})();
