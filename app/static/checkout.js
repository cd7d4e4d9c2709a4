/*
 * Hosted checkout page behaviour (docs/api.md, "Checkout page"). Plain ES2020, no framework, no build step.
 *
 * What it does, all as progressive enhancement (the form posts and the server validates without it):
 *  - formats the card number while typing (4-4-4-4…, Amex 4-6-5) without losing the caret,
 *  - shows the detected card brand (its icon next to the label, highlighted in the accepted brands row), using the
 *    same BIN prefixes as tokenizer/cards.py,
 *  - checks each field on blur (and again while the customer fixes a reported error) with the same
 *    ARIA wiring the server uses: message in #<field>-error, aria-describedby, aria-invalid="true",
 *  - on submit: blocks an invalid form and focuses the first bad field; otherwise locks the pay button on
 *    the first submit so a double click or a second Enter cannot send a second POST,
 *  - for a customer-entered amount (a session with an amount_range): checks the amount field against the range
 *    and shows the amount being paid in the header and on the pay button as it is typed,
 *  - after a decline (the form the server rendered in answer to the declined POST, name and expiry kept), moves
 *    the focus to the decline message,
 *  - inside an iframe, tells the parent window its height (paygate:resize) and, on the outcome page of a final
 *    status, the outcome (paygate:outcome), posted to each allowed parent origin exactly, never "*"
 *    (docs/embedding.md).
 *
 * Card data stays in the form: it is never logged, stored (no localStorage/sessionStorage/cookies), put in
 * the URL or sent anywhere except by the form's own POST.
 */
(() => {
  "use strict";

  // BIN prefix ranges per brand; keep in step with tokenizer/cards.py. Each range is [low, high] over the
  // first N digits, N being the number of digits of `low`.
  const BIN_RULES = [
    ["visa", [[4, 4]]],
    ["mastercard", [[51, 55], [2221, 2720]]],
    ["amex", [[34, 34], [37, 37]]],
    ["discover", [[6011, 6011], [644, 649], [65, 65]]],
    ["diners", [[300, 305], [36, 36], [38, 39]]],
    ["jcb", [[3528, 3589]]],
    ["unionpay", [[62, 62]]],
  ];

  // Used only for brands the server did not list as allowed (to name and format them).
  const FALLBACK = {
    visa: { name: "Visa", pan_lengths: [13, 16, 19], cvc_length: 3 },
    mastercard: { name: "Mastercard", pan_lengths: [16], cvc_length: 3 },
    amex: { name: "American Express", pan_lengths: [15], cvc_length: 4 },
    discover: { name: "Discover", pan_lengths: [16, 17, 18, 19], cvc_length: 3 },
    diners: { name: "Diners Club", pan_lengths: [14, 15, 16, 17, 18, 19], cvc_length: 3 },
    jcb: { name: "JCB", pan_lengths: [16, 17, 18, 19], cvc_length: 3 },
    unionpay: { name: "UnionPay", pan_lengths: [16, 17, 18, 19], cvc_length: 3 },
  };

  // Same plain words as app/forms.py FIELD_MESSAGES, so client and server read alike. English defaults: the
  // form's data-messages (JSON, app/checkout.py js_messages) gives them in the page's language, the amount ones
  // as templates with {low}, {high} and {example}.
  const MESSAGES = {
    nameRequired: "Enter the name shown on your card.",
    nameInvalid: "The name is too long or has characters we can't accept.",
    numberRequired: "Enter your card number.",
    numberLength: "This card number is not the right length. Please check it.",
    numberIncorrect: "This card number is not valid. Please check it.",
    numberBrand: "We can't accept this type of card. Please use another card.",
    expiryRequired: "Enter the expiry date as MM/YY.",
    expiryMonth: "The expiry month must be between 01 and 12.",
    expiryYear: "The expiry year is not valid. Please check it.",
    expiryPast: "This card has expired. Please use another card.",
    cvcRequired: "Enter the security code from your card.",
    cvcInvalid: "The security code is not the right length. Please check it.",
    cvcHintBack: "3 digits on the back",
    cvcHintFront: "4 digits on the front",
    // amount messages: same words as app/forms.py amount_message, with the form's data-amount-* values
    amountRequired: (d) => `Enter the amount you want to pay, between ${d.amountMinDisplay} and ${d.amountMaxDisplay}.`,
    amountInvalid: (d) => `Enter the amount as a number, for example ${d.amountExample}.`,
    amountLow: (d) => `The amount must be at least ${d.amountMinDisplay}.`,
    amountHigh: (d) => `The amount can be at most ${d.amountMaxDisplay}.`,
  };

  /**
   * Minor units from what was typed in the amount field (major units in the page's notation: digits, the
   * locale's decimal symbol, optional grouping in threes), or null when it is not an amount. Mirrors
   * parse_major_units in payments/amount_rules.py; the server judges again.
   */
  function parseAmount(text, exponent, decimalSymbol) {
    const cleaned = String(text || "").replace(/\s/g, "").replace(/[\p{Sc}A-Z]/gu, "");
    const decimal = decimalSymbol || ".";
    const group = decimal === "." ? "," : ".";
    const esc = (c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const D = esc(decimal);
    const G = esc(group);
    let whole;
    let fraction;
    let m = cleaned.match(new RegExp(`^(\\d+)(?:${D}(\\d*))?$`))
      || cleaned.match(new RegExp(`^(\\d{1,3}(?:${G}\\d{3})+)(?:${D}(\\d*))?$`));
    if (m) {
      whole = m[1].split(group).join("");
      fraction = m[2] || "";
    } else if (decimal !== "." && (m = cleaned.match(/^(\d+)\.(\d+)$/))) {
      [, whole, fraction] = m; // digits with a dot are read as a decimal point in every notation
    } else {
      return null;
    }
    if (fraction.length > exponent) return null;
    whole = whole.replace(/^0+(?=\d)/, "");
    if (whole.length + exponent > 13) return null;
    return Number(whole + fraction.padEnd(exponent, "0"));
  }

  const MAX_PAN_DIGITS = 19;

  /** The page's messages (data-messages) over the English defaults. */
  function useMessages(json) {
    let texts = {};
    try {
      texts = JSON.parse(json || "{}");
    } catch (_err) {
      texts = {};
    }
    for (const [key, text] of Object.entries(texts)) {
      if (typeof text !== "string" || !text) continue;
      if (typeof MESSAGES[key] === "function") {
        MESSAGES[key] = (d) => text.replace(/\{(low|high|example)\}/g, (_m, name) => (
          { low: d.amountMinDisplay, high: d.amountMaxDisplay, example: d.amountExample }[name] || ""));
      } else {
        MESSAGES[key] = text;
      }
    }
  }

  /** Digits typed in Arabic-Indic (U+0660-0669) or Eastern Arabic-Indic (U+06F0-06F9) form, made ASCII. */
  function asciiDigits(text) {
    return text.replace(/[\u0660-\u0669]/g, (c) => String(c.charCodeAt(0) - 0x660))
      .replace(/[\u06F0-\u06F9]/g, (c) => String(c.charCodeAt(0) - 0x6F0));
  }

  /** Brand id for the leading digits, or null while unknown or ambiguous. */
  function detectBrand(digits) {
    for (const [id, ranges] of BIN_RULES) {
      for (const [low, high] of ranges) {
        const width = String(low).length;
        if (digits.length < width) continue;
        const lead = Number(digits.slice(0, width));
        if (lead >= low && lead <= high) return id;
      }
    }
    return null;
  }

  /** Luhn (ISO/IEC 7812-1) check digit test over a string of digits. */
  function luhnValid(digits) {
    let sum = 0;
    let double = false;
    for (let i = digits.length - 1; i >= 0; i -= 1) {
      let d = digits.charCodeAt(i) - 48;
      if (double) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
      double = !double;
    }
    return digits.length > 0 && sum % 10 === 0;
  }

  /** Group sizes for display: Amex 4-6-5, 14-digit Diners (36) 4-6-4, everything else blocks of 4. */
  function groupsFor(brand, digits) {
    if (brand === "amex") return [4, 6, 5];
    if (brand === "diners" && digits.startsWith("36")) return [4, 6, 4, 5];
    return [4, 4, 4, 4, 3];
  }

  function groupDigits(digits, brand) {
    const parts = [];
    let at = 0;
    for (const size of groupsFor(brand, digits)) {
      if (at >= digits.length) break;
      parts.push(digits.slice(at, at + size));
      at += size;
    }
    if (at < digits.length) parts.push(digits.slice(at));
    return parts.join(" ");
  }

  /** Index in `text` just after its n-th digit (0 → 0). */
  function indexAfterDigit(text, n) {
    if (n <= 0) return 0;
    let seen = 0;
    for (let i = 0; i < text.length; i += 1) {
      if (text[i] >= "0" && text[i] <= "9") {
        seen += 1;
        if (seen === n) return i + 1;
      }
    }
    return text.length;
  }

  /** "MM/YY" shaping while typing; `deleting` stops the slash from coming straight back. */
  function shapeExpiry(value, deleting) {
    const withSep = value.match(/^\s*(\d{1,2})\s*[/\-.\s]\s*(\d*)\s*$/);
    let month;
    let year;
    if (withSep) {
      month = withSep[1].padStart(2, "0");
      year = withSep[2];
    } else {
      const digits = value.replace(/\D/g, "");
      if (digits.length === 0) return "";
      if (digits.length === 1) return !deleting && digits > "1" ? `0${digits}/` : digits;
      month = digits.slice(0, 2);
      year = digits.slice(2);
      if (year === "") return deleting ? month : `${month}/`;
    }
    if (year.length >= 4) year = year.slice(2, 4); // 12/2030 (autofill or typed in full) → 12/30
    return `${month}/${year}`;
  }

  function setup(form) {
    useMessages(form.dataset.messages);
    let brands = [];
    try {
      brands = JSON.parse(form.dataset.brands || "[]");
    } catch (_err) {
      brands = [];
    }
    const allowed = new Map(brands.map((b) => [b.id, b]));
    const rulesFor = (id) => allowed.get(id) || FALLBACK[id] || null;

    const fields = {
      cardholder_name: form.querySelector("#cardholder_name"),
      number: form.querySelector("#number"),
      expiry: form.querySelector("#expiry"),
      cvc: form.querySelector("#cvc"),
    };
    if (Object.values(fields).some((el) => !el)) return;
    const amountInput = form.querySelector("#amount");
    if (amountInput) {
      // first in every loop below (validation order = page order)
      const cardFields = { ...fields };
      for (const key of Object.keys(fields)) delete fields[key];
      Object.assign(fields, { amount: amountInput }, cardFields);
    }

    const button = form.querySelector('button[type="submit"]');
    const buttonLabel = button && button.querySelector(".pay-label");
    const status = form.querySelector("#submit-status");
    const brandSlot = form.querySelector("#card-brand");
    const cvcHint = form.querySelector("#cvc-hint");
    const summary = document.getElementById("error-summary");
    const touched = new Set();
    let currentBrand = null;
    let locked = false;

    // The script takes over validation, so the browser's own bubbles stay out of the way.
    form.noValidate = true;

    // the accepted brands row (server-rendered icons): the detected brand is highlighted, the others dimmed
    const brandList = form.querySelector(".brand-list");

    // ---- errors, wired the same way as the server-rendered ones ----

    function describedBy(input, id, present) {
      const ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      const has = ids.includes(id);
      if (present && !has) ids.push(id);
      if (!present && has) ids.splice(ids.indexOf(id), 1);
      if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
      else input.removeAttribute("aria-describedby");
    }

    function showError(name, message) {
      const input = fields[name];
      const box = input.closest(".field");
      const errorEl = document.getElementById(`${name}-error`);
      if (errorEl && errorEl.textContent !== (message || "")) errorEl.textContent = message || "";
      if (errorEl) errorEl.hidden = !message;
      if (box) box.classList.toggle("field--invalid", Boolean(message));
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
      describedBy(input, `${name}-error`, Boolean(message));
      if (!message) clearSummaryItem(name);
    }

    function clearSummaryItem(name) {
      if (!summary) return;
      const item = summary.querySelector(`li[data-field="${name}"]`);
      if (item) item.hidden = true;
      if (!summary.querySelector("li:not([hidden])")) summary.hidden = true;
    }

    const isShowingError = (name) => fields[name].getAttribute("aria-invalid") === "true";

    // ---- per-field checks: return "" when fine, else the message ----

    function checkName() {
      const value = fields.cardholder_name.value.trim();
      if (!value) return MESSAGES.nameRequired;
      if (value.length > 100) return MESSAGES.nameInvalid;
      return "";
    }

    function checkNumber() {
      const raw = fields.number.value.replace(/[\s-]/g, "");
      if (!raw) return MESSAGES.numberRequired;
      if (/\D/.test(raw) || raw.length > MAX_PAN_DIGITS) return MESSAGES.numberIncorrect;
      const brand = detectBrand(raw);
      if (!brand) {
        return raw.length >= 12 && luhnValid(raw) ? MESSAGES.numberBrand : MESSAGES.numberIncorrect;
      }
      if (!allowed.has(brand)) return MESSAGES.numberBrand;
      if (!allowed.get(brand).pan_lengths.includes(raw.length)) return MESSAGES.numberLength;
      if (!luhnValid(raw)) return MESSAGES.numberIncorrect;
      return "";
    }

    function checkExpiry() {
      const value = fields.expiry.value.trim();
      if (!value) return MESSAGES.expiryRequired;
      const m = value.match(/^(\d{1,2})\s*\/\s*(\d{2}|\d{4})$/);
      if (!m) return MESSAGES.expiryRequired;
      const month = Number(m[1]);
      if (month < 1 || month > 12) return MESSAGES.expiryMonth;
      const year = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
      const now = new Date();
      // Valid through the last day of its month.
      if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
        return MESSAGES.expiryPast;
      }
      if (year > now.getFullYear() + 50) return MESSAGES.expiryYear;
      return "";
    }

    function checkCvc() {
      const value = fields.cvc.value.trim();
      if (!value) return MESSAGES.cvcRequired;
      if (/\D/.test(value)) return MESSAGES.cvcInvalid;
      const rules = currentBrand ? rulesFor(currentBrand) : null;
      if (rules ? value.length !== rules.cvc_length : value.length < 3 || value.length > 4) {
        return MESSAGES.cvcInvalid;
      }
      return "";
    }

    // ---- the customer-entered amount (amount_range sessions) ----
    const data = form.dataset;
    const amountMin = Number(data.amountMin);
    const amountMax = Number(data.amountMax);
    const amountExponent = Number(data.amountExponent || 0);
    const orderAmount = document.getElementById("order-amount");
    let money = null;
    if (amountInput && window.Intl && Intl.NumberFormat) {
      try {
        money = new Intl.NumberFormat(data.locale || "en", { style: "currency", currency: data.currency });
      } catch (_err) {
        money = null;
      }
    }

    function checkAmount() {
      const value = amountInput.value.trim();
      if (!value) return MESSAGES.amountRequired(data);
      const minor = parseAmount(value, amountExponent, data.amountDecimal);
      if (minor === null) return MESSAGES.amountInvalid(data);
      if (minor < amountMin) return MESSAGES.amountLow(data);
      if (minor > amountMax) return MESSAGES.amountHigh(data);
      return "";
    }

    /** The amount being paid, in the header and on the pay button, while the typed value is in range. */
    function showAmount() {
      if (!amountInput || !money) return;
      const minor = parseAmount(amountInput.value.trim(), amountExponent, data.amountDecimal);
      const ok = minor !== null && minor >= amountMin && minor <= amountMax;
      // on a right-to-left page the amount is one left-to-right isolate, as the server writes it (kernel/i18n.py)
      const formatted = ok ? money.format(minor / 10 ** amountExponent) : "";
      const shown = formatted && document.documentElement.dir === "rtl" ? `\u2066${formatted}\u2069` : formatted;
      if (orderAmount) {
        orderAmount.textContent = shown || `${data.amountMinDisplay}–${data.amountMaxDisplay}`;
        orderAmount.classList.toggle("order-amount--range", !shown);
      }
      if (button && buttonLabel && !locked) {
        const verb = data.payVerb || "Pay";
        const label = shown ? (data.payTemplate || `${verb} {amount}`).replace("{amount}", shown) : verb;
        buttonLabel.textContent = label;
        button.dataset.idleLabel = label;
      }
    }

    const checks = { cardholder_name: checkName, number: checkNumber, expiry: checkExpiry, cvc: checkCvc };
    if (amountInput) checks.amount = checkAmount;
    const validate = (name) => {
      const message = checks[name]();
      showError(name, message);
      return !message;
    };

    // ---- brand display ----

    /** The icon of an accepted brand: the one the server drew in the accepted brands row. */
    function brandIcon(brand) {
      const img = brandList && brandList.querySelector(`.brand-item[data-brand="${brand}"] img`);
      return img ? img.getAttribute("src") : "";
    }

    function renderBrand(brand) {
      if (brand === currentBrand) return;
      currentBrand = brand;
      form.dataset.brand = brand || "";
      if (brandSlot) {
        brandSlot.textContent = "";
        if (brand) {
          const badge = document.createElement("span");
          badge.className = `brand-badge brand-badge--${brand}`;
          const name = document.createElement("span");
          name.textContent = rulesFor(brand).name;
          if (allowed.has(brand)) {
            // the icon is decoration: the brand's name is the text (read out through aria-describedby)
            const icon = document.createElement("img");
            icon.src = brandIcon(brand);
            icon.alt = "";
            icon.width = 32;
            icon.height = 21;
            icon.className = "brand-badge-icon";
            name.className = "visually-hidden";
            badge.append(icon, name);
          } else {
            badge.classList.add("brand-badge--refused");
            badge.appendChild(name);
          }
          brandSlot.appendChild(badge);
        }
      }
      if (brandList) {
        brandList.classList.toggle("has-detected", Boolean(brand && allowed.has(brand)));
        for (const item of brandList.querySelectorAll(".brand-item")) {
          item.classList.toggle("is-detected", item.dataset.brand === brand);
        }
      }
      if (cvcHint) cvcHint.textContent = brand === "amex" ? MESSAGES.cvcHintFront : MESSAGES.cvcHintBack;
      if (touched.has("cvc") || isShowingError("cvc")) validate("cvc");
    }

    // ---- formatting as the customer types ----

    const lastDigits = new WeakMap();

    function onNumberInput(event) {
      const input = fields.number;
      const old = input.value;
      const caret = input.selectionStart == null ? old.length : input.selectionStart;
      const caretAtEnd = caret >= old.length;
      let digits = old.replace(/\D/g, "");
      let before = old.slice(0, caret).replace(/\D/g, "").length;
      const type = (event && event.inputType) || "";
      // Deleting only a separator space would change nothing after reformatting: remove the digit next to it.
      if (type.startsWith("delete") && digits === lastDigits.get(input)) {
        if (type === "deleteContentBackward" && before > 0) {
          digits = digits.slice(0, before - 1) + digits.slice(before);
          before -= 1;
        } else if (type === "deleteContentForward" && before < digits.length) {
          digits = digits.slice(0, before) + digits.slice(before + 1);
        }
      }
      const brand = detectBrand(digits);
      const rules = brand ? rulesFor(brand) : null;
      const maxDigits = rules ? Math.max(...rules.pan_lengths) : MAX_PAN_DIGITS;
      digits = digits.slice(0, maxDigits);
      const formatted = groupDigits(digits, brand);
      if (formatted !== old) {
        input.value = formatted;
        const pos = caretAtEnd ? formatted.length : indexAfterDigit(formatted, Math.min(before, digits.length));
        if (document.activeElement === input) input.setSelectionRange(pos, pos);
      }
      lastDigits.set(input, digits);
      renderBrand(brand);
      const complete = rules && digits.length === maxDigits;
      if (isShowingError("number") || complete) validate("number");
    }

    function onExpiryInput(event) {
      const input = fields.expiry;
      const old = input.value;
      const caretAtEnd = input.selectionStart == null || input.selectionStart >= old.length;
      const deleting = ((event && event.inputType) || "").startsWith("delete");
      if (caretAtEnd) {
        const shaped = shapeExpiry(old, deleting);
        if (shaped !== old) input.value = shaped;
      }
      if (isShowingError("expiry") || /^\d{2}\/\d{2}$/.test(input.value)) validate("expiry");
    }

    function onCvcInput() {
      const input = fields.cvc;
      const cleaned = input.value.replace(/\D/g, "").slice(0, 4);
      if (cleaned !== input.value) input.value = cleaned;
      if (isShowingError("cvc")) validate("cvc");
    }

    // first of the input listeners: the formatting below sees ASCII digits (same length: the caret stays put)
    for (const input of [fields.number, fields.expiry, fields.cvc, amountInput]) {
      if (!input) continue;
      input.addEventListener("input", () => {
        const ascii = asciiDigits(input.value);
        if (ascii !== input.value) {
          const start = input.selectionStart;
          const end = input.selectionEnd;
          input.value = ascii;
          if (document.activeElement === input && start != null) input.setSelectionRange(start, end);
        }
      });
    }
    fields.number.addEventListener("input", onNumberInput);
    fields.expiry.addEventListener("input", onExpiryInput);
    fields.cvc.addEventListener("input", onCvcInput);
    fields.cardholder_name.addEventListener("input", () => {
      if (isShowingError("cardholder_name")) validate("cardholder_name");
    });
    if (amountInput) {
      amountInput.addEventListener("input", () => {
        showAmount();
        if (isShowingError("amount")) validate("amount");
      });
    }

    // Pressing the pay button blurs the field first. Showing that field's error then would push the button
    // down before the click lands, swallowing the click; the submit handler checks every field anyway.
    let pressingPay = false;
    if (button) {
      button.addEventListener("pointerdown", () => {
        pressingPay = true;
      });
      const release = () => window.setTimeout(() => {
        pressingPay = false;
      }, 0);
      document.addEventListener("pointerup", release);
      document.addEventListener("pointercancel", release);
    }

    for (const [name, input] of Object.entries(fields)) {
      input.addEventListener("blur", (event) => {
        if (locked || pressingPay || (button && event.relatedTarget === button)) return;
        // Leaving an untouched empty field is not an error yet; it is once the customer typed in it.
        if (!input.value && !touched.has(name) && !isShowingError(name)) return;
        touched.add(name);
        validate(name);
      });
    }

    // Tidy a prefilled value (autofill before the script ran, or the name/expiry the server echoed back).
    if (fields.number.value) onNumberInput(null);
    else renderBrand(null);
    if (fields.expiry.value) {
      const shaped = shapeExpiry(fields.expiry.value, true);
      if (shaped !== fields.expiry.value) fields.expiry.value = shaped;
    }

    // ---- submit: validate, then lock on the first submit ----

    function lock() {
      locked = true;
      form.classList.add("is-submitting");
      form.setAttribute("aria-busy", "true");
      if (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        button.classList.add("is-busy");
        if (buttonLabel) buttonLabel.textContent = button.dataset.busyLabel || "Processing…";
      }
      // Read-only inputs are still posted (disabled ones would not be).
      for (const input of Object.values(fields)) input.readOnly = true;
      if (status) status.textContent = MESSAGES.processing || "Processing your payment. Please wait and do not close this page.";
    }

    function unlock() {
      locked = false;
      form.classList.remove("is-submitting");
      form.removeAttribute("aria-busy");
      if (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.classList.remove("is-busy");
        if (buttonLabel && button.dataset.idleLabel) buttonLabel.textContent = button.dataset.idleLabel;
      }
      for (const input of Object.values(fields)) input.readOnly = false;
      if (status) status.textContent = "";
    }

    if (button && buttonLabel) button.dataset.idleLabel = buttonLabel.textContent;
    if (amountInput && amountInput.value) showAmount();

    form.addEventListener("submit", (event) => {
      if (locked) {
        event.preventDefault();
        return;
      }
      let firstBad = null;
      for (const name of Object.keys(fields)) {
        touched.add(name);
        if (!validate(name) && !firstBad) firstBad = fields[name];
      }
      if (firstBad) {
        event.preventDefault();
        firstBad.focus();
        return;
      }
      lock();
    });

    // Coming back through the back/forward cache: the earlier POST is done, let the page be used again
    // (the server treats a re-post of the same submission_id as a duplicate, never a second charge).
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && locked) unlock();
    });

    // Error summary: its links move focus to the field; on a re-rendered page the summary gets focus first.
    if (summary) {
      summary.addEventListener("click", (event) => {
        const link = event.target.closest("a[href^='#']");
        if (!link) return;
        const target = document.getElementById(link.getAttribute("href").slice(1));
        if (!target) return;
        event.preventDefault();
        target.focus();
      });
      summary.focus();
    }

    // After a decline: the message first (autofocus does it without scripts, but not in a cross-origin frame).
    const declined = form.querySelector(".notice[data-focus]");
    if (declined && !summary) declined.focus();
  }

  // ---- inside an iframe: messages to the allowed parent origins (docs/embedding.md) ----

  /** The exact origins the page may post to (body data-frame-origins, from PAYGATE_FRAME_ANCESTORS: "'self'" is
   * this page's origin; the server already left out entries that are not one origin). Never "*". */
  function frameOrigins() {
    let listed = [];
    try {
      listed = JSON.parse(document.body.dataset.frameOrigins || "[]");
    } catch (_err) {
      listed = [];
    }
    const out = [];
    for (const entry of Array.isArray(listed) ? listed : []) {
      const origin = entry === "'self'" ? window.location.origin : entry;
      if (typeof origin !== "string" || !/^https?:\/\/[^/*\s]+$/.test(origin) || out.includes(origin)) continue;
      out.push(origin);
    }
    return out;
  }

  function tellParent(message) {
    // each copy reaches the parent only if its origin is that one: the browser drops the others
    for (const origin of frameOrigins()) {
      try {
        window.parent.postMessage(message, origin);
      } catch (_err) {
        // a malformed origin: nothing to send there
      }
    }
  }

  /** The page's height in CSS px (the content, not the frame: the frame may be taller than the page). */
  function pageHeight() {
    return Math.ceil(document.documentElement.getBoundingClientRect().height);
  }

  function talkToParent() {
    let lastHeight = -1;
    const sendHeight = () => {
      const height = pageHeight();
      if (height === lastHeight || height <= 0) return; // 0: the host hid the frame (nothing to lay out)
      lastHeight = height;
      tellParent({ type: "paygate:resize", height });
    };
    sendHeight();
    if (window.ResizeObserver) {
      const observer = new ResizeObserver(() => sendHeight());
      observer.observe(document.documentElement);
      observer.observe(document.body);
    } else {
      window.addEventListener("resize", sendHeight);
    }
    window.addEventListener("load", sendHeight);
    const outcome = document.querySelector("[data-outcome][data-session-id]");
    if (outcome) {
      tellParent({ type: "paygate:outcome", session_id: outcome.dataset.sessionId, status: outcome.dataset.outcome });
    }
  }

  function start() {
    if (window.self !== window.top) document.documentElement.classList.add("in-frame");
    const form = document.getElementById("checkout-form");
    if (form) setup(form);
    if (window.parent !== window) talkToParent();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
