"""English and Arabic texts of the CIU display, by text id.

Arabic strings contain Arabic letters, Western digits and punctuation only: the Arabic font has
no Latin letters, so key names (C, #, *) are drawn separately with the Latin font.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "credit": {"en": "Credit", "ar": "الرصيد"},
    "link_ok": {"en": "Meter link OK", "ar": "الاتصال بالعداد متاح"},
    "link_down": {"en": "Meter not reachable", "ar": "لا يوجد اتصال بالعداد"},
    "not_paired": {"en": "Not paired", "ar": "غير مقترن"},
    "low_credit": {"en": "LOW CREDIT", "ar": "رصيد منخفض"},
    "enter_token": {"en": "Enter token", "ar": "أدخل رمز الشحن"},
    "sending": {"en": "Sending to meter...", "ar": "جاري الإرسال إلى العداد"},
    "queued": {"en": "Queued: link down", "ar": "في الانتظار: الاتصال مقطوع"},
    "pairing": {"en": "Pairing...", "ar": "جاري الاقتران"},
    "accepted": {"en": "Token accepted", "ar": "تم قبول الرمز"},
    "rejected": {"en": "Token rejected", "ar": "تم رفض الرمز"},
    "err_length": {"en": "Token needs 20 digits", "ar": "الرمز يحتاج 20 رقما"},
    "err_code": {"en": "Unknown short code", "ar": "رمز مختصر غير معروف"},
    "no_reply": {"en": "No reply from meter", "ar": "لا يوجد رد من العداد"},
    "new_credit": {"en": "New credit", "ar": "الرصيد الجديد"},
    "added": {"en": "Added", "ar": "المضاف"},
    "relay_on": {"en": "Supply on", "ar": "التيار موصول"},
    "relay_off": {"en": "Supply off", "ar": "التيار مفصول"},
    "back": {"en": "Back", "ar": "حذف"},
    "clear": {"en": "Clear", "ar": "مسح"},
    "enter": {"en": "Enter", "ar": "إدخال"},
    "pair_title": {"en": "Pair with meter", "ar": "الاقتران بالعداد"},
    "pair_prompt": {"en": "Code shown on meter", "ar": "الرقم المعروض على العداد"},
    "paired": {"en": "Paired", "ar": "تم الاقتران"},
    "pair_check": {"en": "Meter must show", "ar": "يجب أن يعرض العداد"},
    "pair_failed": {"en": "Pairing failed", "ar": "فشل الاقتران"},
    "buzzer_off": {"en": "Buzzer off", "ar": "الصافرة متوقفة"},
    "buzzer_on": {"en": "Buzzer on", "ar": "الصافرة تعمل"},
    # token result codes from the meter
    "code_accepted": {"en": "Accepted", "ar": "مقبول"},
    "code_used": {"en": "Already used", "ar": "رمز مستخدم"},
    "code_old": {"en": "Too old", "ar": "رمز قديم"},
    "code_invalid": {"en": "Invalid token", "ar": "رمز غير صالح"},
    "code_format": {"en": "Invalid token", "ar": "رمز غير صالح"},
    "code_crc": {"en": "Invalid token", "ar": "رمز غير صالح"},
    "code_key_expired": {"en": "Key expired", "ar": "انتهت صلاحية المفتاح"},
    "code_wrong_meter": {"en": "Wrong meter", "ar": "عداد خاطئ"},
    "code_limit": {"en": "Credit limit", "ar": "تجاوز حد الرصيد"},
    "code_meter-error": {"en": "Meter error", "ar": "خطأ في العداد"},
    "code_rejected": {"en": "Rejected", "ar": "مرفوض"},
    "code_not_enabled": {"en": "No prepayment", "ar": "الدفع المسبق غير مفعل"},
    "code_not_commissioned": {"en": "Meter has no key", "ar": "العداد بدون مفتاح"},
    "code_locked": {"en": "Entry locked", "ar": "الإدخال مقفل"},
    # short code pages
    "info_1": {"en": "Credit", "ar": "الرصيد"},
    "info_2": {"en": "Last token", "ar": "آخر رمز"},
    "info_3": {"en": "Power", "ar": "القدرة"},
    "info_4": {"en": "Tamper", "ar": "العبث"},
    "info_5": {"en": "Time", "ar": "الوقت"},
    "info_6": {"en": "Supply", "ar": "التيار"},
    "info_7": {"en": "Energy", "ar": "الطاقة"},
    "tamper_none": {"en": "No tamper", "ar": "لا يوجد عبث"},
    "tamper_yes": {"en": "Tamper detected", "ar": "تم اكتشاف عبث"},
    "import": {"en": "Import", "ar": "مستورد"},
    "export": {"en": "Export", "ar": "مصدر"},
}


def text(text_id: str, lang: str) -> str:
    """The text for ``text_id`` in ``lang`` (``en`` or ``ar``); the id itself when unknown."""
    entry = TEXTS.get(text_id)
    if entry is None:
        return text_id
    return entry.get(lang, entry["en"])
