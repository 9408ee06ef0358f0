# Cron pattern -> systemd OnCalendar=, the same translation src/schedule/systemd.ts makes for
# `permafrost systemd` (test/e2e/nix-module.test.ts checks both give the same string), so the
# module's timers fire exactly when the daemon would. Nix cannot catch a throw with its message,
# so every step returns { ok = true; value = …; } or { ok = false; reason = "…"; }.
{ lib }:
let
  inherit (lib) concatStringsSep elemAt length;

  months = [ "JAN" "FEB" "MAR" "APR" "MAY" "JUN" "JUL" "AUG" "SEP" "OCT" "NOV" "DEC" ];
  days = [ "SUN" "MON" "TUE" "WED" "THU" "FRI" "SAT" ];
  systemdDays = [ "Sun" "Mon" "Tue" "Wed" "Thu" "Fri" "Sat" ];

  fields = {
    second = { name = "second"; min = 0; max = 59; };
    minute = { name = "minute"; min = 0; max = 59; };
    hour = { name = "hour"; min = 0; max = 23; };
    dom = { name = "day of month"; min = 1; max = 31; };
    month = { name = "month"; min = 1; max = 12; names = months; };
    dow = { name = "day of week"; min = 0; max = 7; names = days; };
  };

  nicknames = {
    "@yearly" = "0 0 1 1 *";
    "@annually" = "0 0 1 1 *";
    "@monthly" = "0 0 1 * *";
    "@weekly" = "0 0 * * 0";
    "@daily" = "0 0 * * *";
    "@midnight" = "0 0 * * *";
    "@hourly" = "0 * * * *";
  };

  ok = value: { ok = true; inherit value; };
  fail = reason: { ok = false; inherit reason; };
  # Chains results: the first failure wins, as the TypeScript throw does.
  bind = r: f: if r.ok then f r.value else r;

  parseValue = text: spec:
    let
      named = lib.lists.findFirstIndex (n: n == lib.toUpper text) null (spec.names or [ ]);
      n =
        if named != null then named + (if spec.name == "month" then 1 else 0)
        else if builtins.match "[0-9]+" text != null then lib.toIntBase10 text
        else null;
    in
    if n == null || n < spec.min || n > spec.max then fail ''"${text}" is not a valid ${spec.name}'' else ok n;

  # The values one comma-separated part matches; day of week 7 is Sunday (0).
  expandPart = spec: part:
    let
      m = builtins.match "([^/-]+|\\*)(-([^/]+))?(/([0-9]+))?" part;
      from = elemAt m 0;
      to = elemAt m 2;
      stepText = elemAt m 4;
      step = if stepText == null then 1 else lib.toIntBase10 stepText;
      notUnderstood = fail ''"${part}" in the ${spec.name} field is not understood'';
      values = lo: hi:
        ok (map (v: if spec.name == "day of week" && v == 7 then 0 else v)
          (builtins.filter (v: lib.mod (v - lo) step == 0) (lib.range lo hi)));
    in
    if m == null then notUnderstood
    else if step < 1 then fail ''step "${stepText}" in the ${spec.name} field must be at least 1''
    else if from == "*" then
      (if to != null then notUnderstood else values spec.min (if spec.name == "day of week" then 6 else spec.max))
    else
      bind (parseValue from spec) (lo:
        if to == null && stepText != null then fail ''"${part}" needs a range before the step, like "5-59/10"''
        else bind (if to == null then ok lo else parseValue to spec) (hi:
          if hi < lo then fail ''the range "${part}" in the ${spec.name} field runs backwards'' else values lo hi));

  # The sorted set of values a field matches, or null for `*`.
  expandField = field: spec:
    if field == "*" then ok null
    else if builtins.match ".*[LlWw#?].*" field != null then
      fail ''the ${spec.name} field "${field}" uses L, W, # or ?, which OnCalendar= has no equivalent for''
    else
      bind
        (lib.foldl' (acc: part: bind acc (have: bind (expandPart spec part) (more: ok (have ++ more)))) (ok [ ])
          (lib.splitString "," field))
        (vs: ok (lib.sort lib.lessThan (lib.unique vs)));

  pad2 = n: lib.fixedWidthNumber 2 n;

  # Groups sorted values into runs where `next a b` says b follows a.
  runs = next: sorted:
    lib.foldl' (acc: v:
      if acc != [ ] && next (lib.last (lib.last acc)) v
      then lib.init acc ++ [ (lib.last acc ++ [ v ]) ]
      else acc ++ [ [ v ] ]) [ ] sorted;

  renderRuns = show: rs:
    concatStringsSep "," (lib.concatMap (r:
      if length r >= 3 then [ "${show (lib.head r)}..${show (lib.last r)}" ] else map show r) rs);

  # `*`, `start/step` for a progression that runs to the end of the field, or values and ranges.
  renderSet = values: spec:
    if values == null || length values == spec.max - spec.min + 1 then "*"
    else
      let
        first = lib.head values;
        step = elemAt values 1 - first;
        progression = length values >= 3 && step > 1
          && lib.all (i: elemAt values i == first + i * step) (lib.range 0 (length values - 1))
          && lib.last values + step > spec.max;
      in
      if progression then "${pad2 first}/${toString step}"
      else renderRuns pad2 (runs (a: b: b == a + 1) values);

  # Monday-first, as systemd lists them; null when every day matches.
  renderDays = values:
    if values == null || length values == 7 then null
    else
      let
        pos = d: lib.mod (d + 6) 7;
        order = builtins.filter (d: builtins.elem d values) [ 1 2 3 4 5 6 0 ];
      in
      renderRuns (d: elemAt systemdDays d) (runs (a: b: pos b == pos a + 1) order);

  translate = pattern: timeZone:
    let
      trimmed = lib.trim pattern;
      expanded = nicknames.${lib.toLower trimmed} or trimmed;
      parts = builtins.filter (s: builtins.isString s) (builtins.split "[[:space:]]+" expanded);
      six = if length parts == 6 then parts else [ "0" ] ++ parts;
      at = elemAt six;
    in
    if lib.hasPrefix "@" expanded then fail ''"${trimmed}" has no timer equivalent''
    else if length parts != 5 && length parts != 6 then fail "expected 5 or 6 fields, found ${toString (length parts)}"
    else
      bind (expandField (at 5) fields.dow) (dayValues:
      bind (expandField (at 3) fields.dom) (dates:
        let
          both = dayValues != null && dates != null;
          everyDay = both && (length dayValues == 7 || length dates == 31);
        in
        if both && !everyDay then
          fail "it restricts both day of month and day of week, which cron joins with OR and OnCalendar= with AND"
        else
          bind (expandField (at 4) fields.month) (monthValues:
          bind (expandField (at 2) fields.hour) (hours:
          bind (expandField (at 1) fields.minute) (minutes:
          bind (expandField (at 0) fields.second) (seconds:
            let
              weekday = if everyDay then null else renderDays dayValues;
              date = "*-${renderSet monthValues fields.month}-${renderSet (if everyDay then null else dates) fields.dom}";
              time = concatStringsSep ":" [
                (renderSet hours fields.hour)
                (renderSet minutes fields.minute)
                (renderSet seconds fields.second)
              ];
            in
            ok (concatStringsSep " " (builtins.filter (x: x != null) [ weekday date time timeZone ]))))))));
in
{
  /**
    The OnCalendar= expression for a cron pattern (5 fields, 6 with seconds first, or a
    @nickname) in `timeZone` (or null): { ok = true; value; } or { ok = false; reason; }, the
    reason worded as `permafrost systemd` words it.
  */
  toOnCalendar = translate;
}
