// OAuth 2.0 Form Post Response Mode: send the answer on without a click. The button in
// the page does the same where scripts are off.
"use strict";
document.getElementById("form-post").submit();
