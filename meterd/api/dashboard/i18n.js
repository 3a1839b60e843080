// English and Arabic labels of the console. The Arabic terms are those of the meter's LCD
// (meterd/ui/screens.py) and the customer unit (ciu/ui/texts.py) where they exist.

export const TEXTS = {
  en: {
    title: "Meter console", rate: "Rate", simulated: "Simulated", offline: "Offline", live: "Live",
    polling: "Polling", per_phase: "Per-phase values", total: "Total", voltage: "Voltage", current: "Current",
    active_power: "Active power", reactive_power: "Reactive power", apparent_power: "Apparent power",
    power_factor: "Power factor", frequency: "Frequency", phasors: "Phasors", phasor_hint: "solid U, dashed I",
    scope: "Waveform", voltages: "Voltages", currents: "Currents", harmonics: "Harmonics", flicker: "Flicker",
    flicker_note: "Pst after each 10 min, Plt after 2 h.", pq_events: "Power-quality events", energy: "Energy registers",
    rates: "Rate registers", max_demand: "Max demand", load_profile: "Load profile", events: "Events and alarms",
    relay_credit: "Relay and credit", simulation: "Simulation", all_phases: "All phases", apply: "Apply",
    duration: "Duration", inject: "Inject", scenario: "Scenario", load: "Load", token_title: "API token",
    token_help: "Enter a read or control token of this meter (its api-tokens.toml holds them). It is kept for this browser tab only.",
    connect: "Connect", import: "Import", export: "Export", q1: "Reactive QI", q2: "Reactive QII", q3: "Reactive QIII",
    q4: "Reactive QIV", apparent: "Apparent", rate_n: "Rate", all_rates: "All rates", at: "at",
    relay: "Relay", output_state: "Output", control_state: "Control state", control_mode: "Mode",
    relay_fault: "Relay fault", operations: "Operations", credit: "Credit", credit_mode: "Payment",
    low_credit: "Low credit", emergency: "Emergency credit", no_events: "No events", no_profile: "No profile rows yet",
    waveform_none: "no waveform on this meter", clear: "Clear", clear_all: "Clear all", until_cleared: "until cleared",
    injected: "Injected", applied: "Applied", loaded: "Scenario loaded", no_alarms: "No alarms",
    connected: "connected", disconnected: "disconnected", ready_for_reconnection: "ready for reconnection",
    yes: "yes", no: "no", prepaid: "prepaid", postpaid: "postpaid", avg_voltage: "avg U", kw: "kW",
    tamper: "Tamper", alarm: "Alarm", remaining: "left",
  },
  ar: {
    title: "لوحة العداد", rate: "التعريفة", simulated: "محاكاة", offline: "غير متصل", live: "مباشر",
    polling: "استطلاع", per_phase: "قيم الأطوار", total: "الإجمالي", voltage: "الجهد", current: "التيار",
    active_power: "القدرة الفعالة", reactive_power: "القدرة غير الفعالة", apparent_power: "القدرة الظاهرية",
    power_factor: "معامل القدرة", frequency: "التردد", phasors: "المتجهات", phasor_hint: "الجهد متصل، التيار متقطع",
    scope: "شكل الموجة", voltages: "الجهود", currents: "التيارات", harmonics: "التوافقيات", flicker: "الوميض",
    flicker_note: "‏Pst كل 10 دقائق و Plt كل ساعتين.", pq_events: "أحداث جودة القدرة", energy: "سجلات الطاقة",
    rates: "سجلات التعريفة", max_demand: "أقصى طلب", load_profile: "منحنى الحمل", events: "الأحداث والإنذارات",
    relay_credit: "المرحل والرصيد", simulation: "المحاكاة", all_phases: "كل الأطوار", apply: "تطبيق",
    duration: "المدة", inject: "حقن عطل", scenario: "سيناريو", load: "تحميل", token_title: "رمز الوصول",
    token_help: "أدخل رمز قراءة أو تحكم لهذا العداد (من ملف api-tokens.toml). يُحفظ لهذا التبويب فقط.",
    connect: "اتصال", import: "الطاقة المستوردة", export: "الطاقة المصدرة", q1: "غير فعالة ر1", q2: "غير فعالة ر2",
    q3: "غير فعالة ر3", q4: "غير فعالة ر4", apparent: "الظاهرية", rate_n: "التعريفة", all_rates: "كل التعريفات",
    at: "في", relay: "المرحل", output_state: "الخرج", control_state: "حالة التحكم", control_mode: "النمط",
    relay_fault: "عطل المرحل", operations: "عدد العمليات", credit: "الرصيد", credit_mode: "الدفع",
    low_credit: "رصيد منخفض", emergency: "رصيد الطوارئ", no_events: "لا توجد أحداث", no_profile: "لا توجد قيم بعد",
    waveform_none: "لا يوجد شكل موجة لهذا العداد", clear: "مسح", clear_all: "مسح الكل", until_cleared: "حتى المسح",
    injected: "تم الحقن", applied: "تم التطبيق", loaded: "تم تحميل السيناريو", no_alarms: "لا توجد إنذارات",
    connected: "موصول", disconnected: "مفصول", ready_for_reconnection: "جاهز لإعادة التوصيل",
    yes: "نعم", no: "لا", prepaid: "مسبق الدفع", postpaid: "آجل الدفع", avg_voltage: "متوسط الجهد", kw: "ك.وات",
    tamper: "العبث", alarm: "إنذار", remaining: "متبقي",
  },
};

let lang = "en";

export function setLang(next) {
  lang = next in TEXTS ? next : "en";
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "ar" ? "rtl" : "ltr";
  for (const el of document.querySelectorAll("[data-t]")) {
    const text = TEXTS[lang][el.dataset.t];
    if (text !== undefined) el.textContent = text;
  }
  return lang;
}

export function getLang() { return lang; }

export function t(key) {
  return TEXTS[lang][key] ?? TEXTS.en[key] ?? key;
}
