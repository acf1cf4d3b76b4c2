/*
 * The PC platform's DSDT, compiled by iasl at build time (components/pc/CMakeLists.txt) and
 * copied verbatim by build_acpi_tables (components/pc/acpi_tables.cpp). The platform's devices
 * (APICs, PIT, RTC, COM1, the PM registers) are all described by the MADT and the FADT, so the
 * namespace holds only the sleep states: S5 (soft off), whose SLP_TYP 5 is what the PM model
 * (AcpiPm, kSleepTypeS5) turns into the domain's shutdown. No other sleep state is offered.
 */
DefinitionBlock ("", "DSDT", 2, "NESTOR", "NESTORPC", 0x00000001)
{
    /* SLP_TYP for PM1a_CNT, SLP_TYP for PM1b_CNT (there is none), reserved, reserved. */
    Name (\_S5, Package (0x04)
    {
        0x05,
        0x05,
        Zero,
        Zero
    })
}
